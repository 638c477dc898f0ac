// The dynamic batcher's rule (serve/batch_queue.h), with time passed in: when a batch is ready, what it holds,
// and what is refused or timed out.
#include <gtest/gtest.h>

#include "serve/batch_queue.h"

namespace kiln::batch_queue_test {

using serve::BatchPolicy;
using serve::BatchQueue;
using serve::JobPtr;
using serve::QueuedJob;
using serve::ServeClock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

const ServeClock::time_point t0 = ServeClock::time_point() + std::chrono::hours(1);

JobPtr job(std::string key = "a", int64_t items = 1, ServeClock::time_point arrived = t0) {
  auto j = std::make_shared<QueuedJob>();
  j->shape_key = std::move(key);
  j->items = items;
  j->arrived = arrived;
  return j;
}

BatchPolicy batching(int64_t max, microseconds delay, std::vector<int64_t> preferred = {}) {
  BatchPolicy p;
  p.max_batch_size = max;
  p.max_queue_delay = delay;
  p.preferred_batch_sizes = std::move(preferred);
  return p;
}

TEST(BatchQueue, WithoutBatchingEachRequestRunsAloneInArrivalOrder) {
  BatchQueue q(BatchPolicy{});
  const JobPtr a = job(), b = job();
  ASSERT_TRUE(q.push(a));
  ASSERT_TRUE(q.push(b));
  ServeClock::time_point wake = ServeClock::time_point::max();
  EXPECT_EQ(q.take_batch(t0, wake), std::vector<JobPtr>{a});
  EXPECT_EQ(q.take_batch(t0, wake), std::vector<JobPtr>{b});
  EXPECT_TRUE(q.take_batch(t0, wake).empty());
}

TEST(BatchQueue, AFullBatchGoesAtOnceAndAPartialOneAfterTheDelay) {
  BatchQueue q(batching(4, milliseconds(5)));
  std::vector<JobPtr> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back(job("a", 1, t0 + microseconds(i)));
    ASSERT_TRUE(q.push(jobs.back()));
  }
  ServeClock::time_point wake = ServeClock::time_point::max();
  EXPECT_EQ(q.take_batch(t0 + microseconds(10), wake), std::vector<JobPtr>(jobs.begin(), jobs.begin() + 4));
  // Two left: not full, so they wait until the older one has waited the delay.
  wake = ServeClock::time_point::max();
  EXPECT_TRUE(q.take_batch(t0 + microseconds(10), wake).empty());
  EXPECT_EQ(wake, jobs[4]->arrived + milliseconds(5));
  EXPECT_EQ(q.take_batch(wake, wake), std::vector<JobPtr>(jobs.begin() + 4, jobs.end()));
  EXPECT_EQ(q.size(), 0u);
}

TEST(BatchQueue, OnlyRequestsOfTheHeadsShapeJoinItsBatch) {
  BatchQueue q(batching(3, milliseconds(0)));
  const JobPtr a1 = job("a"), b = job("b"), a2 = job("a"), a3 = job("a");
  for (const JobPtr& j : {a1, b, a2, a3}) ASSERT_TRUE(q.push(j));
  ServeClock::time_point wake = ServeClock::time_point::max();
  EXPECT_EQ(q.take_batch(t0, wake), (std::vector<JobPtr>{a1, a2, a3}));
  EXPECT_EQ(q.take_batch(t0, wake), std::vector<JobPtr>{b});
}

TEST(BatchQueue, ARequestOfManyRowsCountsEachRowAndNeverOverflowsTheBatch) {
  BatchQueue q(batching(4, milliseconds(1)));
  const JobPtr three = job("a", 3), two = job("a", 2), one = job("a", 1);
  for (const JobPtr& j : {three, two, one}) ASSERT_TRUE(q.push(j));
  ServeClock::time_point wake = ServeClock::time_point::max();
  // 3 + 2 would pass 4: the two-row request waits, the one-row request fills the batch.
  EXPECT_EQ(q.take_batch(t0, wake), (std::vector<JobPtr>{three, one}));
  EXPECT_TRUE(q.take_batch(t0, wake).empty());
  EXPECT_EQ(q.take_batch(t0 + milliseconds(1), wake), std::vector<JobPtr>{two});
}

TEST(BatchQueue, APreferredSizeGoesWithoutWaitingAndTakesTheLargestThatFits) {
  BatchQueue q(batching(8, milliseconds(100), {2, 4}));
  std::vector<JobPtr> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(job());
    ASSERT_TRUE(q.push(jobs.back()));
  }
  ServeClock::time_point wake = ServeClock::time_point::max();
  EXPECT_EQ(q.take_batch(t0, wake), std::vector<JobPtr>(jobs.begin(), jobs.begin() + 4));
  // One left, below every preferred size: it waits for the delay.
  EXPECT_TRUE(q.take_batch(t0, wake).empty());
  EXPECT_EQ(wake, t0 + milliseconds(100));
}

TEST(BatchQueue, ABoundedQueueRefusesOneMoreAndTimesOutWhatWaitsTooLong) {
  BatchPolicy p = batching(8, milliseconds(500));
  p.max_queue_size = 2;
  p.timeout = milliseconds(100);
  BatchQueue q(p);
  const JobPtr a = job(), b = job("a", 1, t0 + milliseconds(60));
  EXPECT_TRUE(q.push(a));
  EXPECT_TRUE(q.push(b));
  EXPECT_FALSE(q.push(job()));
  ServeClock::time_point wake = ServeClock::time_point::max();
  EXPECT_TRUE(q.take_batch(t0, wake).empty());
  EXPECT_EQ(wake, t0 + milliseconds(100)) << "the first deadline comes before the delay";
  EXPECT_TRUE(q.take_expired(t0 + milliseconds(99)).empty());
  EXPECT_EQ(q.take_expired(t0 + milliseconds(100)), std::vector<JobPtr>{a});
  // A slot is free again; a request whose client left frees its slot too.
  EXPECT_TRUE(q.push(job()));
  EXPECT_TRUE(q.remove(b.get()));
  EXPECT_FALSE(q.remove(b.get()));
  EXPECT_EQ(q.size(), 1u);
}

}  // namespace kiln::batch_queue_test
