#pragma once
// Status and StatusOr<T>: the one error type of moat, in the style of absl::Status.
// Fallible calls on subsystem boundaries return these; codes map onto HTTP statuses and
// OpenAI error types (see HttpStatusOf / OpenAiErrorTypeOf).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace moat {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // 400
  kUnauthenticated,     // 401
  kPermissionDenied,    // 403
  kNotFound,            // 404
  kAlreadyExists,       // 409
  kFailedPrecondition,  // 400
  kPayloadTooLarge,     // 413
  kResourceExhausted,   // 429
  kInternal,            // 500
  kUnimplemented,       // 501
  kUnavailable,         // 503 (upstream down: 502 is chosen by the proxy itself)
  kDeadlineExceeded,    // 504
  kDataLoss,            // 500
};

// [[nodiscard]]: a Status returned by a call must be looked at (or explicitly discarded with
// `(void)`, with a comment saying why), so an error cannot be dropped by accident.
class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message" or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::string_view StatusCodeName(StatusCode code);
int HttpStatusOf(StatusCode code);
// The OpenAI error "type" field for a code, e.g. "invalid_request_error".
std::string_view OpenAiErrorTypeOf(StatusCode code);

inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status UnauthenticatedError(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status PermissionDeniedError(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceededError(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }

// Holds either a value or a non-OK Status. [[nodiscard]] like Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace moat

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define MOAT_RETURN_IF_ERROR(expr)             \
  do {                                         \
    ::moat::Status moat_status_ = (expr);      \
    if (!moat_status_.ok()) return moat_status_; \
  } while (0)

#define MOAT_CONCAT_INNER_(a, b) a##b
#define MOAT_CONCAT_(a, b) MOAT_CONCAT_INNER_(a, b)
// Evaluates `expr` (a StatusOr<T>); on error returns its Status, else moves the value into `lhs`.
#define MOAT_ASSIGN_OR_RETURN(lhs, expr) \
  MOAT_ASSIGN_OR_RETURN_IMPL_(MOAT_CONCAT_(moat_statusor_, __LINE__), lhs, expr)
#define MOAT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
