// The one place where a Status becomes an AWS error on the wire (D7, D8, D15): the `__type`
// shape name and the HTTP status. Everything else passes Status values around.
#pragma once

#include <string>

#include "common/http_message.h"
#include "common/status.h"

namespace meterd::protocol {

struct WireError {
  int http_status;
  const char* type;  // the error shape name, e.g. "TimestampOutOfBoundsException"
};

WireError ToWireError(StatusCode code);

// {"__type":"...","message":"..."} with the awsJson1_1 content type and x-amzn-RequestId.
HttpResponse ErrorResponse(const Status& status, const std::string& request_id);

// A 200 response with a JSON body.
HttpResponse JsonResponse(std::string body, const std::string& request_id);

}  // namespace meterd::protocol
