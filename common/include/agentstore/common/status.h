// Status and Result<T>: how every module boundary in agentstore reports failure.
// Exceptions from dependencies are caught at their adapter and become a Status; none
// cross a module boundary or the wire. The set of codes is closed and maps 1:1 to the
// protocol's error codes.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace agentstore {

enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kInvalidArgument = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kResourceExhausted = 5,
  kUnavailable = 6,
  kCorruption = 7,
  kIoError = 8,
  kNotImplemented = 9,
  kOutOfRange = 10,  // a position (a change-feed sequence) the store no longer keeps
};
inline constexpr int kStatusCodeCount = 11;

// Lower-case snake name of a code ("not_found"), as used in logs, the CLI and docs.
std::string_view StatusCodeName(StatusCode code);

// A value type; OK is a null pointer, so returning success costs nothing.
class Status {
 public:
  Status() noexcept = default;
  Status(StatusCode code, std::string_view message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return {StatusCode::kNotFound, msg}; }
  static Status InvalidArgument(std::string_view msg) {
    return {StatusCode::kInvalidArgument, msg};
  }
  static Status AlreadyExists(std::string_view msg) { return {StatusCode::kAlreadyExists, msg}; }
  static Status PermissionDenied(std::string_view msg) {
    return {StatusCode::kPermissionDenied, msg};
  }
  static Status ResourceExhausted(std::string_view msg) {
    return {StatusCode::kResourceExhausted, msg};
  }
  static Status Unavailable(std::string_view msg) { return {StatusCode::kUnavailable, msg}; }
  static Status Corruption(std::string_view msg) { return {StatusCode::kCorruption, msg}; }
  static Status IoError(std::string_view msg) { return {StatusCode::kIoError, msg}; }
  static Status NotImplemented(std::string_view msg) { return {StatusCode::kNotImplemented, msg}; }
  static Status OutOfRange(std::string_view msg) { return {StatusCode::kOutOfRange, msg}; }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "not_found: user 0190... does not exist", or "ok".
  std::string ToString() const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

// Either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status(StatusCode::kInvalidArgument, "Result built from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace agentstore

// Returns early from the enclosing function when `expr` is not OK.
#define AS_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::agentstore::Status _as_status = (expr); \
    if (!_as_status.ok()) return _as_status;  \
  } while (0)

#define AS_CONCAT_INNER(a, b) a##b
#define AS_CONCAT(a, b) AS_CONCAT_INNER(a, b)
// `AS_ASSIGN_OR_RETURN(auto x, Foo());` binds x to Foo()'s value or returns its Status.
#define AS_ASSIGN_OR_RETURN(lhs, expr) \
  AS_ASSIGN_OR_RETURN_IMPL(AS_CONCAT(_as_result_, __LINE__), lhs, expr)
#define AS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
