#include "common/http_message.h"

#include <cctype>

namespace meterd {

const std::string* HttpRequest::FindHeader(std::string_view lower_name) const {
  for (const auto& h : headers) {
    if (h.name.size() != lower_name.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < lower_name.size() && equal; ++i) {
      equal = std::tolower(static_cast<unsigned char>(h.name[i])) == lower_name[i];
    }
    if (equal) return &h.value;
  }
  return nullptr;
}

}  // namespace meterd
