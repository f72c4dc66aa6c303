#include "moat/status.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgumentError("not positive");
  return v;
}

Status UsesMacros(int v, int* out) {
  MOAT_ASSIGN_OR_RETURN(*out, ParsePositive(v));
  MOAT_RETURN_IF_ERROR(v > 100 ? ResourceExhaustedError("too big") : Status::Ok());
  return Status::Ok();
}

TEST(StatusTest, CodesMapToHttpAndOpenAiTypes) {
  EXPECT_EQ(HttpStatusOf(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusOf(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(OpenAiErrorTypeOf(StatusCode::kResourceExhausted), "rate_limit_error");
  EXPECT_EQ(InvalidArgumentError("x").ToString(), "INVALID_ARGUMENT: x");
}

TEST(StatusTest, MacrosPropagate) {
  int out = 0;
  EXPECT_TRUE(UsesMacros(5, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(UsesMacros(-1, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(UsesMacros(101, &out).code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace moat
