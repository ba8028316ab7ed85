#include "common/status.h"

namespace meterd {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "Ok";
    case StatusCode::kMissingAuthenticationToken:
      return "MissingAuthenticationToken";
    case StatusCode::kIncompleteSignature:
      return "IncompleteSignature";
    case StatusCode::kInvalidSignature:
      return "InvalidSignature";
    case StatusCode::kInvalidSignatureScope:
      return "InvalidSignatureScope";
    case StatusCode::kUnrecognizedClient:
      return "UnrecognizedClient";
    case StatusCode::kAccessDenied:
      return "AccessDenied";
    case StatusCode::kUnknownOperation:
      return "UnknownOperation";
    case StatusCode::kSerialization:
      return "Serialization";
    case StatusCode::kValidation:
      return "Validation";
    case StatusCode::kRequestTooLarge:
      return "RequestTooLarge";
    case StatusCode::kCustomerNotEntitled:
      return "CustomerNotEntitled";
    case StatusCode::kDisabledApi:
      return "DisabledApi";
    case StatusCode::kDuplicateRequest:
      return "DuplicateRequest";
    case StatusCode::kExpiredToken:
      return "ExpiredToken";
    case StatusCode::kIdempotencyConflict:
      return "IdempotencyConflict";
    case StatusCode::kInternal:
      return "Internal";
    case StatusCode::kInvalidCustomerIdentifier:
      return "InvalidCustomerIdentifier";
    case StatusCode::kInvalidEndpointRegion:
      return "InvalidEndpointRegion";
    case StatusCode::kInvalidLicense:
      return "InvalidLicense";
    case StatusCode::kInvalidProductCode:
      return "InvalidProductCode";
    case StatusCode::kInvalidPublicKeyVersion:
      return "InvalidPublicKeyVersion";
    case StatusCode::kInvalidRegion:
      return "InvalidRegion";
    case StatusCode::kInvalidTag:
      return "InvalidTag";
    case StatusCode::kInvalidToken:
      return "InvalidToken";
    case StatusCode::kInvalidUsageAllocations:
      return "InvalidUsageAllocations";
    case StatusCode::kInvalidUsageDimension:
      return "InvalidUsageDimension";
    case StatusCode::kPlatformNotSupported:
      return "PlatformNotSupported";
    case StatusCode::kThrottling:
      return "Throttling";
    case StatusCode::kTimestampOutOfBounds:
      return "TimestampOutOfBounds";
    case StatusCode::kDryRunOperation:
      return "DryRunOperation";
    case StatusCode::kIoError:
      return "IoError";
    case StatusCode::kCorruption:
      return "Corruption";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kConflict:
      return "Conflict";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

}  // namespace meterd
