// The dynamic batcher's queue of one model version and its rule for when a batch is ready, as Triton's
// dynamic batcher has it (model_repository.h's config.json fields):
//
//   - Requests wait in arrival order, at most max_queue_size of them; one more is refused (503).
//   - A batch is the oldest request plus the later ones of the same shape key (equal inputs apart from the
//     batch dim), up to max_batch_size items (a request of n rows is n items).
//   - It is ready when it is full, when it reaches one of the preferred batch sizes (the largest it can
//     fill is taken), or when its oldest request has waited max_queue_delay.
//   - A request still queued at its deadline (timeout_ms after it arrived) is taken out and answered 504.
//   - max_batch_size 0: no batching, each request runs alone as soon as a worker is free.
//
// Not thread-safe: serve/batch_scheduler.h calls it under its lock. Time is passed in, so tests set it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln::serve {

using ServeClock = std::chrono::steady_clock;

struct BatchPolicy {
  int64_t max_batch_size = 0;  // 0: no batching
  std::vector<int64_t> preferred_batch_sizes;
  std::chrono::microseconds max_queue_delay{0};
  size_t max_queue_size = 64;
  std::chrono::milliseconds timeout{0};  // 0: none
  int64_t instances = 1;                 // batches of this queue that may run at once
};

// What the queue needs to know of a request; the service derives its own job from it.
struct QueuedJob {
  virtual ~QueuedJob() = default;
  int64_t items = 1;
  std::string shape_key;
  ServeClock::time_point arrived;
  ServeClock::time_point deadline = ServeClock::time_point::max();
};

using JobPtr = std::shared_ptr<QueuedJob>;

class BatchQueue {
 public:
  explicit BatchQueue(BatchPolicy policy) : policy_(std::move(policy)) {}

  const BatchPolicy& policy() const { return policy_; }
  size_t size() const { return jobs_.size(); }

  // Adds a job (its deadline set from the policy's timeout); false when the queue is full.
  bool push(const JobPtr& job);
  // Takes a job out (its client went away); false if it is not queued (already running or answered).
  bool remove(const QueuedJob* job);
  // Takes out the jobs whose deadline has passed.
  std::vector<JobPtr> take_expired(ServeClock::time_point now);
  // Takes out the batch that is ready at `now`, if any; otherwise returns none and lowers `wake` to when
  // the head's batch will be ready by waiting, or to the earliest deadline.
  std::vector<JobPtr> take_batch(ServeClock::time_point now, ServeClock::time_point& wake);

 private:
  BatchPolicy policy_;
  std::deque<JobPtr> jobs_;
};

}  // namespace kiln::serve
