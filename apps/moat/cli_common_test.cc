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

TEST(ExitCodeTest, EveryCommandMapsAStatusToTheSameExitCode) {
  EXPECT_EQ(ExitCodeOf(Status::Ok()), kExitOk);
  EXPECT_EQ(ExitCodeOf(InvalidArgumentError("bad flag")), kExitBadArguments);
  EXPECT_EQ(ExitCodeOf(NotFoundError("no such file")), kExitNotFound);
  EXPECT_EQ(ExitCodeOf(UnavailableError("gateway down")), kExitFailure);
  EXPECT_EQ(ExitCodeOf(DataLossError("corrupt")), kExitFailure);
  // A command with an exit code of its own keeps it when it succeeds.
  EXPECT_EQ(ExitCodeOf(StatusOr<int>(kExitNoEvidence)), kExitNoEvidence);
  EXPECT_EQ(ExitCodeOf(StatusOr<int>(NotFoundError("no model"))), kExitNotFound);
}

}  // namespace
}  // namespace moat::cli
