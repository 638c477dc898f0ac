#include "serve/batch_queue.h"

#include <algorithm>

namespace kiln::serve {

bool BatchQueue::push(const JobPtr& job) {
  if (jobs_.size() >= policy_.max_queue_size) return false;
  if (policy_.timeout.count() > 0) job->deadline = job->arrived + policy_.timeout;
  jobs_.push_back(job);
  return true;
}

bool BatchQueue::remove(const QueuedJob* job) {
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const JobPtr& j) { return j.get() == job; });
  if (it == jobs_.end()) return false;
  jobs_.erase(it);
  return true;
}

std::vector<JobPtr> BatchQueue::take_expired(ServeClock::time_point now) {
  std::vector<JobPtr> expired;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if ((*it)->deadline <= now) {
      expired.push_back(*it);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

std::vector<JobPtr> BatchQueue::take_batch(ServeClock::time_point now, ServeClock::time_point& wake) {
  if (jobs_.empty()) return {};
  for (const JobPtr& j : jobs_) wake = std::min(wake, j->deadline);
  const JobPtr head = jobs_.front();
  if (policy_.max_batch_size <= 0) {
    jobs_.pop_front();
    return {head};
  }
  std::vector<size_t> chosen{0};
  // The head and the later jobs of its shape that fit, oldest first.
  int64_t total = head->items;
  std::vector<int64_t> running_total{total};
  for (size_t i = 1; i < jobs_.size() && total < policy_.max_batch_size; ++i) {
    const QueuedJob& j = *jobs_[i];
    if (j.shape_key != head->shape_key || total + j.items > policy_.max_batch_size) continue;
    chosen.push_back(i);
    total += j.items;
    running_total.push_back(total);
  }
  size_t take = 0;  // how many of `chosen`
  if (total >= policy_.max_batch_size) {
    take = chosen.size();
  } else {
    // The largest preferred size this batch can fill exactly or pass: cut at the last job within it.
    int64_t preferred = 0;
    for (int64_t p : policy_.preferred_batch_sizes)
      if (p <= total) preferred = std::max(preferred, p);
    if (preferred > 0) {
      while (take < chosen.size() && running_total[take] <= preferred) ++take;
      take = std::max<size_t>(take, 1);
    } else if (now >= head->arrived + policy_.max_queue_delay) {
      take = chosen.size();
    } else {
      wake = std::min(wake, head->arrived + policy_.max_queue_delay);
      return {};
    }
  }
  std::vector<JobPtr> batch;
  for (size_t k = 0; k < take; ++k) batch.push_back(jobs_[chosen[k]]);
  // Erase from the back so that the earlier indices stay valid.
  for (size_t k = take; k-- > 0;) jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(chosen[k]));
  return batch;
}

}  // namespace kiln::serve
