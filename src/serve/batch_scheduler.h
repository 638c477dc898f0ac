// The workers that run every model's batches: one pool shared by all the queues (serve/batch_queue.h), so
// that two models on the same cores take turns instead of fighting over them. Each worker sleeps on a
// condition variable until a batch is ready, a queued request times out, or a request arrives; it runs
// one batch at a time with the intra-op threads it was given. Queues are served in turn (round robin),
// each running at most its policy's `instances` batches at once.
//
// On flush() and on destruction queued requests run without waiting for fuller batches; the destructor
// returns once every queued request has run, so that a server that stops drains.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/batch_queue.h"

namespace kiln::serve {

class BatchScheduler {
 public:
  // `run` executes one batch and answers its jobs; `expire` answers a job that timed out in the queue.
  // Both run on a worker, outside the scheduler's lock.
  struct Handlers {
    std::function<void(std::vector<JobPtr>& batch)> run;
    std::function<void(const JobPtr& job)> expire;
  };
  class Queue;
  using QueuePtr = std::shared_ptr<Queue>;

  BatchScheduler(int workers, int intra_op_threads);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  QueuePtr add_queue(BatchPolicy policy, Handlers handlers);
  // The queue takes no part any more once it is empty and idle (a model unloaded or replaced); requests
  // already queued still run.
  void retire(const QueuePtr& queue);

  enum class Admit { kQueued, kFull };
  Admit submit(const QueuePtr& queue, const JobPtr& job);
  // Takes a queued job out (its client went away); false if it already runs or ran.
  bool cancel(const QueuePtr& queue, const QueuedJob* job);
  // Jobs waiting in the queue now.
  size_t depth(const QueuePtr& queue) const;
  // From now on a queued job runs as soon as a worker is free, without waiting for a fuller batch (the
  // server is stopping).
  void flush();

 private:
  void work(int intra_op_threads);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<QueuePtr> queues_;
  size_t next_ = 0;  // round robin
  bool stopping_ = false;
  bool flushing_ = false;
  std::vector<std::thread> workers_;
};

class BatchScheduler::Queue {
 public:
  Queue(BatchPolicy policy, Handlers handlers) : queue(std::move(policy)), handlers(std::move(handlers)) {}

 private:
  friend class BatchScheduler;
  BatchQueue queue;
  Handlers handlers;
  int64_t running = 0;
  bool retired = false;
};

}  // namespace kiln::serve
