#include "cli_common.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::cli {
namespace {

TEST(DetectionConfigFromTest, BothSubjectBoundsComeFromTheConfig) {
  server::DetectionSettings ds;
  ds.max_subjects = 5000;
  ds.max_evicted_subjects = 2;
  detect::DetectionConfig dc = DetectionConfigFrom(ds);
  EXPECT_EQ(dc.max_subjects, 5000u);
  auto* store = dynamic_cast<detect::InMemorySubjectStore*>(dc.store.get());
  ASSERT_NE(store, nullptr) << "the evicted-subject store must be the configured, capped one";
  for (uint64_t i = 1; i <= 5; ++i) {
    detect::SubjectState s;
    s.id_hash = i;
    s.SetId("acct_" + std::to_string(i));
    store->Put(s);
  }
  EXPECT_EQ(store->size(), 2u);
}

}  // namespace
}  // namespace moat::cli
