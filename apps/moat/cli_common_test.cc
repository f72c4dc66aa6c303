#include "cli_common.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::cli {
namespace {

TEST(DetectionConfigFromTest, BothSubjectBoundsComeFromTheConfig) {
  server::DetectionSettings ds;
  ds.max_subjects = 5000;
  ds.max_evicted_subjects = 2;
  auto dc = DetectionConfigFrom(ds);
  ASSERT_TRUE(dc.ok()) << dc.status().ToString();
  EXPECT_EQ(dc->max_subjects, 5000u);
  EXPECT_EQ(dc->max_evicted_subjects, 2u);
}

TEST(DetectionConfigFromTest, NamedSettingsApplyAndUnknownNamesAreRefused) {
  server::DetectionSettings ds;
  ds.settings["policy.pool_min_evidence"] = 5.0;
  auto dc = DetectionConfigFrom(ds);
  ASSERT_TRUE(dc.ok()) << dc.status().ToString();
  ds.settings["policy.no_such_setting"] = 1.0;
  EXPECT_FALSE(DetectionConfigFrom(ds).ok());
}

}  // namespace
}  // namespace moat::cli
