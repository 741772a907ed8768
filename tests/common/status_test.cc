// Status/Result: codes, messages, copies, and the early-return macros.
#include "agentstore/common/status.h"

#include <gtest/gtest.h>

namespace agentstore {
namespace {

TEST(Status, OkIsEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "ok");
  EXPECT_TRUE(s.message().empty());
}

TEST(Status, CarriesCodeAndMessageThroughCopies) {
  Status s = Status::NotFound("user 1");
  Status copy = s;
  Status moved = std::move(s);
  EXPECT_EQ(copy.code(), StatusCode::kNotFound);
  EXPECT_EQ(moved.ToString(), "not_found: user 1");
  copy = Status::OK();
  EXPECT_TRUE(copy.ok());
}

TEST(Status, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i < kStatusCodeCount; ++i)
    names.insert(StatusCodeName(static_cast<StatusCode>(i)));
  EXPECT_EQ(names.size(), static_cast<size_t>(kStatusCodeCount));
  EXPECT_EQ(StatusCodeName(StatusCode::kPermissionDenied), "permission_denied");
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  AS_ASSIGN_OR_RETURN(int h, Half(x));
  AS_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::OK();
}

TEST(Result, ValueOrStatusAndMacros) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = Quarter(6, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Half(3).status().message(), "odd");
  // A Result built from an OK status is itself an error: no value to give.
  Result<int> bad = Status::OK();
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace agentstore
