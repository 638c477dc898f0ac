#include "serve/batch_scheduler.h"

#include <algorithm>

#include "runtime/threads.h"

namespace kiln::serve {

BatchScheduler::BatchScheduler(int workers, int intra_op_threads) {
  for (int i = 0; i < std::max(workers, 1); ++i)
    workers_.emplace_back([this, intra_op_threads] { work(intra_op_threads); });
}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

BatchScheduler::QueuePtr BatchScheduler::add_queue(BatchPolicy policy, Handlers handlers) {
  auto q = std::make_shared<Queue>(std::move(policy), std::move(handlers));
  std::lock_guard lock(mutex_);
  queues_.push_back(q);
  return q;
}

void BatchScheduler::retire(const QueuePtr& queue) {
  {
    std::lock_guard lock(mutex_);
    queue->retired = true;
  }
  wake_.notify_all();
}

BatchScheduler::Admit BatchScheduler::submit(const QueuePtr& queue, const JobPtr& job) {
  {
    std::lock_guard lock(mutex_);
    if (!queue->queue.push(job)) return Admit::kFull;
  }
  wake_.notify_one();
  return Admit::kQueued;
}

bool BatchScheduler::cancel(const QueuePtr& queue, const QueuedJob* job) {
  std::lock_guard lock(mutex_);
  return queue->queue.remove(job);
}

size_t BatchScheduler::depth(const QueuePtr& queue) const {
  std::lock_guard lock(mutex_);
  return queue->queue.size();
}

void BatchScheduler::flush() {
  {
    std::lock_guard lock(mutex_);
    flushing_ = true;
  }
  wake_.notify_all();
}

void BatchScheduler::work(int intra_op_threads) {
  // libgomp keeps the thread count per thread: each worker sets its own.
  runtime::set_intra_op_threads(intra_op_threads);
  std::unique_lock lock(mutex_);
  for (;;) {
    const ServeClock::time_point now = ServeClock::now();
    ServeClock::time_point wake = ServeClock::time_point::max();
    std::vector<std::pair<QueuePtr, JobPtr>> expired;
    QueuePtr chosen;
    std::vector<JobPtr> batch;
    bool queued = false;
    for (size_t k = 0; k < queues_.size(); ++k) {
      const QueuePtr& q = queues_[(next_ + k) % queues_.size()];
      for (JobPtr& j : q->queue.take_expired(now)) expired.emplace_back(q, std::move(j));
      queued |= q->queue.size() > 0;
      if (chosen || q->running >= q->queue.policy().instances) continue;
      // A stopping server runs what is queued at once instead of waiting for fuller batches.
      batch = q->queue.take_batch(stopping_ || flushing_ ? ServeClock::time_point::max() : now, wake);
      if (!batch.empty()) {
        chosen = q;
        next_ = (next_ + k + 1) % queues_.size();
      }
    }
    // Retired queues leave once nothing of theirs is queued or running.
    std::erase_if(queues_, [](const QueuePtr& q) { return q->retired && q->running == 0 && q->queue.size() == 0; });
    if (!expired.empty() || chosen) {
      if (chosen) ++chosen->running;
      lock.unlock();
      for (auto& [q, j] : expired) q->handlers.expire(j);
      if (chosen) {
        try {
          chosen->handlers.run(batch);
        } catch (const std::exception&) {  // the handler answers its jobs; a worker must not die with it
        }
      }
      lock.lock();
      if (chosen) --chosen->running;
      // A finished batch may let another worker take the next one of that queue.
      wake_.notify_all();
      continue;
    }
    if (stopping_ && !queued) return;
    if (wake == ServeClock::time_point::max())
      wake_.wait(lock);
    else
      wake_.wait_until(lock, wake);
  }
}

}  // namespace kiln::serve
