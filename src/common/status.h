// Status and Result<T>: the error type of the request path (no exceptions on the data plane).
//
// A Status carries a code and a message. Codes name *what went wrong* in meterd's own terms;
// protocol/errors.cc is the one place that maps a code to an AWS error shape and HTTP status.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace meterd {

enum class StatusCode {
  kOk = 0,
  // Transport and authentication (SigV4).
  kMissingAuthenticationToken,
  kIncompleteSignature,
  kInvalidSignature,       // 403: bad signature or expired
  kInvalidSignatureScope,  // 400: wrong service/terminator in the credential scope
  kUnrecognizedClient,
  kAccessDenied,
  kUnknownOperation,
  kSerialization,
  kValidation,
  kRequestTooLarge,  // mapped to ValidationException, but the connection is closed afterwards
  // Modeled metering errors.
  kCustomerNotEntitled,
  kDisabledApi,
  kDuplicateRequest,
  kExpiredToken,
  kIdempotencyConflict,
  kInternal,
  kInvalidCustomerIdentifier,
  kInvalidEndpointRegion,
  kInvalidLicense,
  kInvalidProductCode,
  kInvalidPublicKeyVersion,
  kInvalidRegion,
  kInvalidTag,
  kInvalidToken,
  kInvalidUsageAllocations,
  kInvalidUsageDimension,
  kPlatformNotSupported,
  kThrottling,
  kTimestampOutOfBounds,
  kDryRunOperation,
  // Store and configuration (never sent to clients as such: mapped to kInternal on the wire).
  kIoError,
  kCorruption,
  kNotFound,
  kInvalidArgument,
  kConflict,  // control plane: the resource exists, is still referenced, or cannot move so
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Name of a status code, for logs and tests ("Validation", "IoError", ...).
const char* StatusCodeName(StatusCode code);

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : value_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(value_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(value_);
  }
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> value_;
};

#define METERD_RETURN_IF_ERROR(expr) \
  do {                               \
    ::meterd::Status _st = (expr);   \
    if (!_st.ok()) return _st;       \
  } while (0)

}  // namespace meterd
