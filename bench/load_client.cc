#include "load_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "auth/sigv4.h"
#include "common/crypto.h"
#include "common/time_util.h"
#include "json/json.h"

namespace meterd::bench {
namespace {

constexpr std::string_view kBatchTarget = "AWSMPMeteringService.BatchMeterUsage";
constexpr std::string_view kMeterTarget = "AWSMPMeteringService.MeterUsage";
constexpr std::string_view kContentType = "application/x-amz-json-1.1";
// After the bound, answers to requests already sent are awaited this long: their records may be
// stored, and counting them keeps records_accepted equal to what the ledger gained.
constexpr int64_t kDrainMicros = 2'000'000;
// A refused or reset connection is retried after this pause, so that a server that is down does
// not turn the generator into a busy loop.
constexpr int64_t kReconnectBackoffMicros = 100'000;
// Timeouts and reconnects are checked this often: far below the 30 s timeout, and cheap.
constexpr int64_t kScanMicros = 50'000;
// Completed fresh requests kept per thread for retries and conflicts.
constexpr size_t kRememberSlots = 4096;
constexpr size_t kReadChunk = 16384;
constexpr size_t kMaxHeaderBytes = size_t{64} * 1024;
constexpr size_t kMaxBodyBytes = size_t{64} * 1024 * 1024;

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void AppendInt(std::string* out, int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, end);
}

// Ids are compared as an order-independent sum of hashes: a retry must get the same set of
// MeteringRecordIds, whatever order the server lists them in.
uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

// xorshift64*: the share draws need no quality beyond "uniform enough" and must be cheap.
class FastRandom {
 public:
  explicit FastRandom(uint64_t seed) : state_(seed == 0 ? 0x9E3779B97F4A7C15ULL : seed) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 2685821657736338717ULL;
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

struct Endpoint {
  std::string host_header;  // host[:port] as given
  std::string path;
  sockaddr_storage address{};
  socklen_t address_length = 0;
};

Result<Endpoint> ParseEndpoint(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Status(StatusCode::kInvalidArgument, "--endpoint must be http://HOST:PORT[/PATH]");
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  Endpoint e;
  e.host_header = std::string(rest.substr(0, slash));
  e.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string host = e.host_header, port = "80";
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return Status(StatusCode::kInvalidArgument, "bad IPv6 host");
    if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
    host = host.substr(1, close - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  if (host.empty()) return Status(StatusCode::kInvalidArgument, "--endpoint has no host");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "cannot resolve " + e.host_header + ": " + gai_strerror(rc));
  }
  std::memcpy(&e.address, found->ai_addr, found->ai_addrlen);
  e.address_length = found->ai_addrlen;
  freeaddrinfo(found);
  return e;
}

enum RecordStatusIndex {
  kSuccess,
  kDuplicateRecord,
  kCustomerNotSubscribed,
  kUnprocessed,
  kRequestFailed,
  kNoStatus,
  kRecordStatusCount
};
constexpr std::array<const char*, kRecordStatusCount> kRecordStatusNames = {
    "Success",     "DuplicateRecord", "CustomerNotSubscribed",
    "Unprocessed", "RequestFailed",   "NoStatus"};

enum class Kind { kFresh, kRetry, kConflict };

// Enough of a completed fresh request to send it again.
struct Remembered {
  uint64_t request = 0;   // batch: request index; meter: workload index
  int64_t timestamp = 0;  // meter: the Timestamp sent
  std::string token;      // meter: the ClientToken sent
  uint64_t id_hash = 0;   // the MeteringRecordIds answered
};

struct Pending {
  Kind kind = Kind::kFresh;
  size_t records = 0;
  int64_t start_us = 0;  // latency is measured from here (the scheduled time under --rate)
  int64_t sent_us = 0;   // the timeout runs from here
  Remembered memo;
};

// Per-thread counters, merged into the report after the run.
struct Stats {
  LatencyHistogram latency;
  std::array<uint64_t, 600> http{};
  std::map<std::string, uint64_t> errors;
  std::array<uint64_t, kRecordStatusCount> records{};
  std::map<std::string, uint64_t> other_record_status;
  std::array<KindCounts, 3> kinds{};
  uint64_t requests = 0;
  uint64_t records_sent = 0;
  uint64_t records_accepted = 0;
};

// What every worker reads (immutable during the run) plus the two shared counters.
struct Shared {
  const RunOptions* options = nullptr;
  Endpoint endpoint;
  std::optional<BatchPlan> plan;
  BatchTargets batch;
  MeterTargets meter;
  int64_t base_seconds = 0;
  int64_t deadline_us = 0;  // 0: none
  std::atomic<uint64_t> issued{0};
  std::atomic<uint64_t> next_fresh{0};
};

enum class ConnState { kDown, kConnecting, kReady, kWriting, kAwaiting };

struct Connection {
  uint32_t index = 0;
  // Bumped for every socket: an event still queued for a closed socket names an older
  // generation and is dropped instead of being taken for news of the new one.
  uint32_t generation = 0;
  int fd = -1;
  ConnState state = ConnState::kDown;
  int64_t connect_started_us = 0;
  int64_t retry_at_us = 0;
  bool write_armed = false;
  std::string out;
  size_t out_sent = 0;
  std::unique_ptr<char[]> in;
  size_t in_capacity = 0;
  size_t in_length = 0;
  bool has_pending = false;
  Pending pending;
};

class Worker {
 public:
  Worker(Shared* shared, size_t connections, double rate, uint64_t seed)
      : shared_(shared), options_(*shared->options), random_(seed) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < connections; ++i) {
      connections_.push_back(std::make_unique<Connection>());
      connections_.back()->index = static_cast<uint32_t>(i);
    }
    if (rate > 0) interval_us_ = 1e6 / rate;
    headers_ = {
        {"Host", shared_->endpoint.host_header},
        {"Content-Type", std::string(kContentType)},
        {"X-Amz-Target", std::string(options_.op == Op::kBatch ? kBatchTarget : kMeterTarget)}};
    resends_ = options_.retry_share > 0 || options_.conflict_share > 0;
    if (resends_) remembered_.reserve(kRememberSlots);
  }
  ~Worker() {
    for (auto& c : connections_) {
      if (c->fd >= 0) close(c->fd);
    }
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  bool ok() const { return epoll_fd_ >= 0; }
  Stats& stats() { return stats_; }

  void Run() {
    const int64_t start = SteadyMicros();
    next_slot_us_ = static_cast<double>(start);
    for (auto& c : connections_) Connect(c.get(), start);
    std::array<epoll_event, 128> events{};
    int64_t next_scan = start + kScanMicros;
    while (true) {
      int64_t now = SteadyMicros();
      if (!stopping_ && shared_->deadline_us != 0 && now >= shared_->deadline_us) {
        BeginStop(now);
      }
      if (stopping_ && (in_flight_ == 0 || now >= drain_until_us_)) break;
      if (!stopping_) StartIdle(now);
      if (now >= next_scan) {
        Scan(now);
        next_scan = now + kScanMicros;
      }
      int64_t wake = next_scan;
      if (stopping_) {
        wake = std::min(wake, drain_until_us_);
      } else {
        if (shared_->deadline_us != 0) wake = std::min(wake, shared_->deadline_us);
        if (!idle_.empty()) wake = std::min(wake, static_cast<int64_t>(next_slot_us_));
      }
      const int timeout_ms = static_cast<int>(std::max<int64_t>(0, (wake - now + 999) / 1000));
      const int n =
          epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        const uint64_t data = events[i].data.u64;
        Connection* c = connections_[data & 0xffffffffU].get();
        if (c->fd >= 0 && c->generation == static_cast<uint32_t>(data >> 32)) {
          HandleEvent(c, events[i].events);
        }
      }
    }
    // Whatever is still unanswered is lost to this run: counted, never as accepted.
    for (auto& c : connections_) {
      if (c->has_pending) FailRequest(c.get(), "unanswered at end");
    }
  }

 private:
  void BeginStop(int64_t now) {
    stopping_ = true;
    drain_until_us_ = now + kDrainMicros;
    idle_.clear();
  }

  // --- connections ---

  void Connect(Connection* c, int64_t now) {
    const Endpoint& e = shared_->endpoint;
    c->fd = socket(e.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return ConnectFailed(c, now);
    const int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++c->generation;
    c->connect_started_us = now;
    c->in_length = 0;
    c->write_armed = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = EventData(*c);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) != 0) return ConnectFailed(c, now);
    const int rc = connect(c->fd, reinterpret_cast<const sockaddr*>(&e.address), e.address_length);
    if (rc == 0) return Connected(c, now);
    if (errno != EINPROGRESS) return ConnectFailed(c, now);
    c->state = ConnState::kConnecting;
  }

  void Connected(Connection* c, int64_t now) {
    Arm(c, false);
    c->state = ConnState::kReady;
    TryStart(c, now);
  }

  void ConnectFailed(Connection* c, int64_t now) {
    ++stats_.errors["connect failed"];
    CloseSocket(c);
    c->retry_at_us = now + kReconnectBackoffMicros;
  }

  void CloseSocket(Connection* c) {
    if (c->fd >= 0) close(c->fd);  // also removes it from the epoll set
    c->fd = -1;
    c->state = ConnState::kDown;
    c->in_length = 0;
  }

  static uint64_t EventData(const Connection& c) {
    return (uint64_t{c.generation} << 32) | c.index;
  }

  void Arm(Connection* c, bool want_write) {
    if (c->write_armed == want_write) return;
    epoll_event ev{};
    ev.events = want_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.u64 = EventData(*c);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
    c->write_armed = want_write;
  }

  // Timeouts and reconnects.
  void Scan(int64_t now) {
    const auto timeout_us = static_cast<int64_t>(options_.timeout_seconds * 1e6);
    for (auto& conn : connections_) {
      Connection* c = conn.get();
      if (c->has_pending && now - c->pending.sent_us >= timeout_us) {
        FailRequest(c, "timeout");
        CloseSocket(c);
        if (!stopping_) Connect(c, now);
      } else if (c->state == ConnState::kConnecting && now - c->connect_started_us >= timeout_us) {
        ++stats_.errors["connect failed"];
        CloseSocket(c);
        if (!stopping_) Connect(c, now);
      } else if (c->state == ConnState::kDown && !stopping_ && now >= c->retry_at_us) {
        Connect(c, now);
      }
    }
  }

  void HandleEvent(Connection* c, uint32_t events) {
    const int64_t now = SteadyMicros();
    if (c->state == ConnState::kConnecting) {
      int error = 0;
      socklen_t length = sizeof(error);
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
        return ConnectFailed(c, now);
      }
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) Connected(c, now);
      return;
    }
    if (c->state == ConnState::kWriting && (events & EPOLLOUT) != 0) {
      FlushWrite(c, now);
      if (c->state == ConnState::kDown) return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) Read(c, now);
  }

  // A transport failure of the request in flight (if any); the connection is reopened after a
  // pause.
  void TransportFailure(Connection* c, int64_t now) {
    if (c->has_pending) FailRequest(c, "connection error");
    CloseSocket(c);
    c->retry_at_us = now + kReconnectBackoffMicros;
  }

  // --- requests ---

  void TryStart(Connection* c, int64_t now) {
    if (stopping_) return;
    if (interval_us_ > 0 && static_cast<double>(now) < next_slot_us_) {
      idle_.push_back(c);
      return;
    }
    StartRequest(c, now);
  }

  void StartIdle(int64_t now) {
    while (!idle_.empty() && !stopping_ && static_cast<double>(now) >= next_slot_us_) {
      Connection* c = idle_.back();
      idle_.pop_back();
      if (c->state == ConnState::kReady && !c->has_pending) StartRequest(c, now);
    }
  }

  void StartRequest(Connection* c, int64_t now) {
    if (options_.requests > 0 &&
        shared_->issued.fetch_add(1, std::memory_order_relaxed) >= options_.requests) {
      return BeginStop(now);
    }
    int64_t start = now;
    if (interval_us_ > 0) {
      // Open loop: latency counts from the scheduled start, so a server that falls behind shows
      // up as latency rather than as a quietly lower send rate.
      start = static_cast<int64_t>(next_slot_us_);
      next_slot_us_ += interval_us_;
    }
    Kind kind = Kind::kFresh;
    if (!remembered_.empty()) {
      const double u = random_.Uniform();
      if (u < options_.retry_share) {
        kind = Kind::kRetry;
      } else if (u < options_.retry_share + options_.conflict_share) {
        kind = Kind::kConflict;
      }
    }
    Pending& p = c->pending;
    p.kind = kind;
    p.start_us = start;
    p.sent_us = now;
    if (kind == Kind::kFresh) {
      p.memo.request = shared_->next_fresh.fetch_add(1, std::memory_order_relaxed);
      p.memo.id_hash = 0;
    } else {
      p.memo = remembered_[random_.Next() % remembered_.size()];
    }
    const int64_t quantity = kind == Kind::kConflict ? 2 : 1;
    if (options_.op == Op::kBatch) {
      BuildBatch(p, quantity);
    } else {
      BuildMeter(p, quantity);
    }
    Serialize(c);
    c->has_pending = true;
    ++in_flight_;
    c->state = ConnState::kWriting;
    FlushWrite(c, now);
  }

  void BuildBatch(Pending& p, int64_t quantity) {
    const BatchPlan& plan = *shared_->plan;
    body_.clear();
    AppendBatchBody(plan, shared_->batch, shared_->base_seconds, p.memo.request, quantity, &body_);
    p.records = plan.records_per_request();
    const uint64_t region = plan.RegionOf(p.memo.request);
    if (region != region_index_ || region_.empty()) {
      region_index_ = region;
      region_ = plan.Region(region);
    }
    const auto& sellers = shared_->batch.sellers;
    Sign(sellers[p.memo.request % sellers.size()], region_);
  }

  void BuildMeter(Pending& p, int64_t quantity) {
    const MeterTargets& t = shared_->meter;
    if (p.kind == Kind::kFresh) {
      p.memo.request %= t.workloads.size();
      p.memo.timestamp = WallMillis() / 1000;
      p.memo.token = RandomUuid();
    }
    body_.clear();
    body_.append("{\"ProductCode\":");
    json::AppendQuoted(&body_, t.product_code);
    body_.append(",\"Timestamp\":");
    AppendInt(&body_, p.memo.timestamp);
    body_.append(",\"UsageDimension\":");
    json::AppendQuoted(&body_, t.dimension);
    body_.append(",\"UsageQuantity\":");
    AppendInt(&body_, quantity);
    body_.append(",\"ClientToken\":\"").append(p.memo.token).append("\"}");
    p.records = 1;
    const MeterWorkload& w = t.workloads[p.memo.request];
    Sign(w.credential, options_.region.empty() ? w.region : options_.region);
  }

  void Sign(const auth::Credential& credential, const std::string& region) {
    auth::SignRequest("POST", shared_->endpoint.path, &headers_, body_, credential, region,
                      auth::kMeteringSigningName, WallMillis());
  }

  void Serialize(Connection* c) {
    std::string& out = c->out;
    out.clear();
    out.append("POST ").append(shared_->endpoint.path).append(" HTTP/1.1\r\n");
    for (const auto& h : headers_) out.append(h.name).append(": ").append(h.value).append("\r\n");
    out.append("Content-Length: ");
    AppendInt(&out, static_cast<int64_t>(body_.size()));
    out.append("\r\n\r\n").append(body_);
    c->out_sent = 0;
  }

  void FlushWrite(Connection* c, int64_t now) {
    while (c->out_sent < c->out.size()) {
      const ssize_t n =
          send(c->fd, c->out.data() + c->out_sent, c->out.size() - c->out_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c->out_sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        Arm(c, true);
        return;
      } else {
        return TransportFailure(c, now);
      }
    }
    Arm(c, false);
    c->state = ConnState::kAwaiting;
  }

  void Read(Connection* c, int64_t now) {
    while (true) {
      if (c->in_capacity - c->in_length < kReadChunk) {
        const size_t capacity = std::max(c->in_capacity * 2, c->in_length + kReadChunk);
        auto bigger = std::make_unique<char[]>(capacity);
        if (c->in_length > 0) std::memcpy(bigger.get(), c->in.get(), c->in_length);
        c->in = std::move(bigger);
        c->in_capacity = capacity;
      }
      const size_t space = c->in_capacity - c->in_length;
      const ssize_t n = recv(c->fd, c->in.get() + c->in_length, space, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return TransportFailure(c, now);
      }
      if (n == 0) {
        if (c->has_pending && c->in_length > 0 && Parse(c, true, now)) return;
        if (c->has_pending) return TransportFailure(c, now);
        // The server closed an idle keep-alive connection: open another at once.
        CloseSocket(c);
        if (!stopping_) Connect(c, now);
        return;
      }
      c->in_length += static_cast<size_t>(n);
      if (!c->has_pending) {
        // Bytes nobody asked for: the connection is out of step, start afresh.
        CloseSocket(c);
        if (!stopping_) Connect(c, now);
        return;
      }
      if (Parse(c, false, now)) return;
      // One recv usually holds the whole answer; read again only when the buffer filled up.
      if (static_cast<size_t>(n) < space) return;
    }
  }

  // Whether the connection's buffer held a complete (or malformed) response, now handled.
  bool Parse(Connection* c, bool eof, int64_t now) {
    const ParseResult r =
        ParseHttpResponse(std::string_view(c->in.get(), c->in_length), eof, &parsed_);
    if (r == ParseResult::kIncomplete) return false;
    if (r == ParseResult::kMalformed) {
      FailRequest(c, "malformed response");
      CloseSocket(c);
      c->retry_at_us = now + kReconnectBackoffMicros;
      return true;
    }
    Complete(c, now);
    if (parsed_.close || eof) {
      CloseSocket(c);
      if (!stopping_) Connect(c, now);
      return true;
    }
    // No pipelining: whatever follows the response would be unasked for, and is dropped.
    c->in_length = 0;
    c->state = ConnState::kReady;
    TryStart(c, SteadyMicros());
    return true;
  }

  // --- outcomes ---

  void FinishRequest(Connection* c) {
    c->has_pending = false;
    --in_flight_;
    ++stats_.requests;
    stats_.records_sent += c->pending.records;
    ++stats_.kinds[static_cast<size_t>(c->pending.kind)].requests;
  }

  void FailRequest(Connection* c, const char* error) {
    FinishRequest(c);
    ++stats_.errors[error];
    stats_.records[kRequestFailed] += c->pending.records;
    ++stats_.kinds[static_cast<size_t>(c->pending.kind)].unexpected;
  }

  void Complete(Connection* c, int64_t now) {
    FinishRequest(c);
    const Pending& p = c->pending;
    stats_.latency.Add(now - p.start_us);
    const int status = parsed_.status;
    if (status >= 0 && static_cast<size_t>(status) < stats_.http.size()) {
      ++stats_.http[static_cast<size_t>(status)];
    }
    size_t success = 0, duplicate = 0;
    uint64_t id_hash = 0;
    std::string error_type;
    if (status != 200) {
      error_type = ErrorTypeOf(status, parsed_.body, parsed_.error_type_header);
      ++stats_.errors[error_type];
      stats_.records[kRequestFailed] += p.records;
    } else if (options_.op == Op::kBatch) {
      CountBatchAnswer(p.records, &success, &duplicate, &id_hash);
    } else {
      auto doc = json::Parse(parsed_.body);
      const json::Value* id =
          doc.ok() && doc->is_object() ? doc->Find("MeteringRecordId") : nullptr;
      if (id != nullptr && id->is_string() && !id->text().empty()) {
        success = 1;
        id_hash = Fnv1a(id->text());
        ++stats_.records[kSuccess];
      } else {
        ++stats_.records[kNoStatus];
      }
    }

    bool expected = false;
    switch (p.kind) {
      case Kind::kFresh:
        expected = success == p.records;
        stats_.records_accepted += success;
        if (expected && resends_) Remember(p.memo, id_hash);
        break;
      case Kind::kRetry:
        expected = success == p.records && id_hash == p.memo.id_hash;
        break;
      case Kind::kConflict:
        expected = options_.op == Op::kBatch ? duplicate == p.records
                                             : error_type == "IdempotencyConflictException" ||
                                                   error_type == "DuplicateRequestException";
        break;
    }
    if (!expected) ++stats_.kinds[static_cast<size_t>(p.kind)].unexpected;
  }

  void CountBatchAnswer(size_t records, size_t* success, size_t* duplicate, uint64_t* id_hash) {
    auto doc = json::Parse(parsed_.body);
    size_t accounted = 0;
    if (doc.ok() && doc->is_object()) {
      if (const json::Value* results = doc->Find("Results"); results && results->is_array()) {
        for (const json::Value& r : results->items()) {
          const json::Value* st = r.is_object() ? r.Find("Status") : nullptr;
          if (st == nullptr || !st->is_string()) continue;
          ++accounted;
          const std::string& name = st->text();
          if (name == "Success") {
            ++*success;
            ++stats_.records[kSuccess];
            if (const json::Value* id = r.Find("MeteringRecordId"); id && id->is_string()) {
              *id_hash += Fnv1a(id->text());
            }
          } else if (name == "DuplicateRecord") {
            ++*duplicate;
            ++stats_.records[kDuplicateRecord];
          } else if (name == "CustomerNotSubscribed") {
            ++stats_.records[kCustomerNotSubscribed];
          } else {
            ++stats_.other_record_status[name];
          }
        }
      }
      if (const json::Value* u = doc->Find("UnprocessedRecords"); u && u->is_array()) {
        accounted += u->items().size();
        stats_.records[kUnprocessed] += u->items().size();
      }
    }
    if (accounted < records) stats_.records[kNoStatus] += records - accounted;
  }

  void Remember(const Remembered& memo, uint64_t id_hash) {
    Remembered entry = memo;
    entry.id_hash = id_hash;
    if (remembered_.size() < kRememberSlots) {
      remembered_.push_back(std::move(entry));
    } else {
      remembered_[remember_next_] = std::move(entry);
      remember_next_ = (remember_next_ + 1) % kRememberSlots;
    }
  }

  Shared* shared_;
  const RunOptions& options_;
  FastRandom random_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> idle_;  // ready, waiting for a --rate slot
  double interval_us_ = 0;         // per-thread time between sends under --rate
  double next_slot_us_ = 0;
  bool stopping_ = false;
  int64_t drain_until_us_ = 0;
  size_t in_flight_ = 0;
  bool resends_ = false;
  std::vector<Remembered> remembered_;
  size_t remember_next_ = 0;
  std::vector<auth::Header> headers_;
  std::string body_;
  uint64_t region_index_ = 0;
  std::string region_;
  ParsedResponse parsed_;
  Stats stats_;
};

void AppendLatency(std::string* out, const char* name, double micros, bool first) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%s\"%s\":%.3f", first ? "" : ",", name, micros / 1000);
  out->append(buffer);
}

std::string Fixed(double value, int digits) {
  if (!std::isfinite(value)) value = 0;
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

template <typename Map>
void AppendCountsJson(std::string* out, const Map& counts) {
  out->push_back('{');
  bool first = true;
  for (const auto& [key, count] : counts) {
    if (!first) out->push_back(',');
    first = false;
    if constexpr (std::is_same_v<typename Map::key_type, int>) {
      json::AppendQuoted(out, std::to_string(key));
    } else {
      json::AppendQuoted(out, key);
    }
    out->push_back(':');
    AppendInt(out, static_cast<int64_t>(count));
  }
  out->push_back('}');
}

template <typename Map>
std::string CountsText(const Map& counts) {
  if (counts.empty()) return "none";
  std::string out;
  for (const auto& [key, count] : counts) {
    if (!out.empty()) out.append("  ");
    if constexpr (std::is_same_v<typename Map::key_type, int>) {
      out.append(std::to_string(key));
    } else {
      out.append(key);
    }
    out.append("=").append(std::to_string(count));
  }
  return out;
}

}  // namespace

// --- BatchPlan ---

BatchPlan::BatchPlan(size_t customers, size_t dimensions, size_t hours, size_t records_per_request,
                     std::string run_id, std::string explicit_region)
    : customers_(customers),
      dimensions_(dimensions),
      hours_(hours),
      records_per_request_(records_per_request),
      requests_per_region_(0),
      run_id_(std::move(run_id)),
      explicit_region_(std::move(explicit_region)) {
  if (records_per_request_ > 0) {
    requests_per_region_ =
        static_cast<uint64_t>(customers_) * dimensions_ * hours_ / records_per_request_;
  }
}

BatchPlan::Record BatchPlan::At(uint64_t request, size_t j) const {
  const uint64_t c = (request % requests_per_region_) * records_per_request_ + j;
  Record r;
  r.region = request / requests_per_region_;
  r.customer = static_cast<uint32_t>(c % customers_);
  r.dimension = static_cast<uint32_t>((c / customers_) % dimensions_);
  r.hours_back = static_cast<uint32_t>((c / (customers_ * dimensions_)) % hours_);
  return r;
}

std::string BatchPlan::Region(uint64_t k) const {
  if (k == 0 && !explicit_region_.empty()) return explicit_region_;
  return "bench-" + run_id_ + "-" + std::to_string(k);
}

size_t UsableHours(int64_t now_ms, int64_t duration_seconds) {
  const int64_t in_month = (FloorToHour(now_ms) - StartOfMonth(now_ms)) / kMillisPerHour + 1;
  int64_t hours = std::min<int64_t>(20, in_month);
  if (duration_seconds > 0) {
    // The oldest hour must still be inside the 24 h window when the run ends.
    const int64_t run_hours = (duration_seconds + 3599) / 3600;
    hours = std::min<int64_t>(hours, 23 - run_hours);
  }
  return static_cast<size_t>(std::max<int64_t>(1, hours));
}

void AppendBatchBody(const BatchPlan& plan, const BatchTargets& targets, int64_t base_seconds,
                     uint64_t request, int64_t quantity, std::string* out) {
  out->append("{\"ProductCode\":");
  json::AppendQuoted(out, targets.product_code);
  out->append(",\"UsageRecords\":[");
  for (size_t j = 0; j < plan.records_per_request(); ++j) {
    const BatchPlan::Record r = plan.At(request, j);
    out->append(j == 0 ? "{\"Timestamp\":" : ",{\"Timestamp\":");
    AppendInt(out, base_seconds - int64_t{3600} * r.hours_back);
    out->append(",\"CustomerIdentifier\":");
    json::AppendQuoted(out, targets.customers[r.customer]);
    out->append(",\"Dimension\":");
    json::AppendQuoted(out, targets.dimensions[r.dimension]);
    out->append(",\"Quantity\":");
    AppendInt(out, quantity);
    out->push_back('}');
  }
  out->append("]}");
}

// --- LatencyHistogram ---

namespace {
constexpr int kSubBits = 7;
constexpr int64_t kSubCount = int64_t{1} << kSubBits;
constexpr int kMaxExponent = 40 - kSubBits;  // 2^40 us is 12 days

size_t BucketOf(int64_t v) {
  if (v < 2 * kSubCount) return static_cast<size_t>(v);
  int e = 63 - __builtin_clzll(static_cast<uint64_t>(v)) - kSubBits;
  e = std::min(e, kMaxExponent);
  const int64_t sub = std::min(v >> e, 2 * kSubCount - 1);
  return static_cast<size_t>(e * kSubCount + sub);
}

double MidpointOf(size_t bucket) {
  const auto b = static_cast<int64_t>(bucket);
  if (b < 2 * kSubCount) return static_cast<double>(b);
  const int64_t e = b / kSubCount - 1;
  const int64_t sub = b - e * kSubCount;
  return static_cast<double>(sub << e) + static_cast<double>(int64_t{1} << e) / 2;
}
}  // namespace

LatencyHistogram::LatencyHistogram()
    : buckets_(static_cast<size_t>((kMaxExponent + 2) * kSubCount), 0) {}

void LatencyHistogram::Add(int64_t micros) {
  micros = std::max<int64_t>(0, micros);
  ++buckets_[BucketOf(micros)];
  ++count_;
  max_ = std::max(max_, micros);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  const auto rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(MidpointOf(i), static_cast<double>(max_));
  }
  return static_cast<double>(max_);
}

// --- HTTP ---

ParseResult ParseHttpResponse(std::string_view data, bool eof, ParsedResponse* out) {
  out->decoded.clear();
  out->error_type_header = {};
  size_t offset = 0;
  while (true) {
    const size_t header_end = data.find("\r\n\r\n", offset);
    if (header_end == std::string_view::npos) {
      return data.size() - offset > kMaxHeaderBytes ? ParseResult::kMalformed
                                                    : ParseResult::kIncomplete;
    }
    std::string_view head = data.substr(offset, header_end - offset);
    // "HTTP/1.x SSS reason"
    if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') {
      return ParseResult::kMalformed;
    }
    int status = 0;
    if (std::from_chars(head.data() + 9, head.data() + 12, status).ptr != head.data() + 12) {
      return ParseResult::kMalformed;
    }
    out->status = status;
    out->close = head[7] == '0';  // HTTP/1.0 closes unless it says keep-alive
    bool chunked = false;
    std::optional<size_t> content_length;
    size_t line_start = head.find("\r\n");
    while (line_start != std::string_view::npos) {
      line_start += 2;
      const size_t line_end = head.find("\r\n", line_start);
      const std::string_view line =
          head.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                     : line_end - line_start);
      line_start = line_end;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        size_t length = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        if (ec != std::errc() || end != value.data() + value.size() || length > kMaxBodyBytes ||
            (content_length && *content_length != length)) {
          return ParseResult::kMalformed;
        }
        content_length = length;
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        chunked = ContainsIgnoreCase(value, "chunked");
      } else if (EqualsIgnoreCase(name, "connection")) {
        if (ContainsIgnoreCase(value, "close")) out->close = true;
        if (ContainsIgnoreCase(value, "keep-alive")) out->close = false;
      } else if (EqualsIgnoreCase(name, "x-amzn-errortype")) {
        out->error_type_header = value;
      }
    }
    const size_t body_start = header_end + 4;
    if (status >= 100 && status < 200) {
      offset = body_start;  // an interim response: the real one follows
      continue;
    }
    if (status == 204 || status == 304) {
      out->body = {};
      out->consumed = body_start;
      return ParseResult::kComplete;
    }
    if (chunked) {
      size_t pos = body_start;
      while (true) {
        const size_t size_end = data.find("\r\n", pos);
        if (size_end == std::string_view::npos) return ParseResult::kIncomplete;
        size_t size = 0;
        const char* first = data.data() + pos;
        auto [end, ec] = std::from_chars(first, data.data() + size_end, size, 16);
        if (ec != std::errc() || end == first || size > kMaxBodyBytes) {
          return ParseResult::kMalformed;
        }
        pos = size_end + 2;
        if (size == 0) {
          // Optional trailers, then an empty line.
          if (data.substr(pos, 2) == "\r\n") {
            out->consumed = pos + 2;
          } else {
            const size_t trailers_end = data.find("\r\n\r\n", pos);
            if (trailers_end == std::string_view::npos) return ParseResult::kIncomplete;
            out->consumed = trailers_end + 4;
          }
          out->body = out->decoded;
          return ParseResult::kComplete;
        }
        if (data.size() < pos + size + 2) return ParseResult::kIncomplete;
        if (data.substr(pos + size, 2) != "\r\n") return ParseResult::kMalformed;
        out->decoded.append(data.substr(pos, size));
        if (out->decoded.size() > kMaxBodyBytes) return ParseResult::kMalformed;
        pos += size + 2;
      }
    }
    if (content_length) {
      if (data.size() - body_start < *content_length) return ParseResult::kIncomplete;
      out->body = data.substr(body_start, *content_length);
      out->consumed = body_start + *content_length;
      return ParseResult::kComplete;
    }
    // Neither length nor chunks: the body ends with the connection.
    if (!eof) {
      return data.size() - body_start > kMaxBodyBytes ? ParseResult::kMalformed
                                                      : ParseResult::kIncomplete;
    }
    out->body = data.substr(body_start);
    out->consumed = data.size();
    out->close = true;
    return ParseResult::kComplete;
  }
}

std::string ErrorTypeOf(int status, std::string_view body, std::string_view error_type_header) {
  auto clean = [](std::string_view type) {
    type = type.substr(0, type.find(':'));
    if (const size_t hash = type.rfind('#'); hash != std::string_view::npos) {
      type.remove_prefix(hash + 1);
    }
    return std::string(type);
  };
  if (!body.empty()) {
    auto doc = json::Parse(body);
    if (doc.ok() && doc->is_object()) {
      const json::Value* type = doc->Find("__type");
      if (type == nullptr) type = doc->Find("code");
      if (type != nullptr && type->is_string() && !clean(type->text()).empty()) {
        return clean(type->text());
      }
    }
  }
  if (!error_type_header.empty() && !clean(error_type_header).empty()) {
    return clean(error_type_header);
  }
  return "HTTP " + std::to_string(status);
}

// --- the run ---

Result<RunReport> RunLoad(const RunOptions& options, const catalog::Catalog& catalog) {
  auto invalid = [](std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message));
  };
  if (options.connections < 1) return invalid("--connections must be at least 1");
  if (options.threads < 1 || options.threads > options.connections) {
    return invalid("--threads must be 1..connections");
  }
  auto shared = std::make_unique<Shared>();
  shared->options = &options;
  auto endpoint = ParseEndpoint(options.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  shared->endpoint = std::move(*endpoint);
  const int64_t now_ms = WallMillis();
  shared->base_seconds = now_ms / 1000;

  if (options.op == Op::kBatch) {
    auto targets = FindBatchTargets(catalog);
    if (!targets.ok()) return invalid(targets.status().message());
    shared->batch = std::move(*targets);
    if (shared->batch.customers.size() > UINT32_MAX) return invalid("too many customers");
    const size_t hours =
        UsableHours(now_ms, static_cast<int64_t>(std::ceil(options.duration_seconds)));
    shared->plan.emplace(shared->batch.customers.size(), shared->batch.dimensions.size(), hours,
                         options.records_per_request, options.run_id, options.region);
    if (!shared->plan->valid()) {
      return invalid(
          "only " +
          std::to_string(shared->batch.customers.size() * shared->batch.dimensions.size() * hours) +
          " distinct records per region (customers x dimensions x hours): use fewer "
          "--records-per-request");
    }
  } else {
    auto targets = FindMeterTargets(catalog);
    if (!targets.ok()) return invalid(targets.status().message());
    shared->meter = std::move(*targets);
  }

  // Connections and the rate are split between the threads as evenly as they go.
  std::vector<std::unique_ptr<Worker>> workers;
  const uint64_t seed = Fnv1a(options.run_id) ^ static_cast<uint64_t>(now_ms);
  for (size_t t = 0; t < options.threads; ++t) {
    const size_t n =
        options.connections / options.threads + (t < options.connections % options.threads ? 1 : 0);
    const double rate =
        options.rate * static_cast<double>(n) / static_cast<double>(options.connections);
    workers.push_back(std::make_unique<Worker>(shared.get(), n, rate, seed + 7919 * (t + 1)));
    if (!workers.back()->ok()) return Status(StatusCode::kInternal, "epoll_create1 failed");
  }

  const int64_t start = SteadyMicros();
  if (options.duration_seconds > 0) {
    shared->deadline_us = start + static_cast<int64_t>(options.duration_seconds * 1e6);
  }
  std::vector<std::thread> threads;
  for (size_t t = 1; t < workers.size(); ++t) {
    threads.emplace_back([w = workers[t].get()] { w->Run(); });
  }
  workers[0]->Run();
  for (auto& t : threads) t.join();
  const int64_t end = SteadyMicros();

  RunReport report;
  report.op = options.op;
  report.endpoint = options.endpoint;
  report.run_id = options.run_id;
  report.connections = options.connections;
  report.seconds = static_cast<double>(end - start) / 1e6;
  std::array<uint64_t, kRecordStatusCount> records{};
  for (auto& w : workers) {
    Stats& s = w->stats();
    report.requests += s.requests;
    report.records_sent += s.records_sent;
    report.records_accepted += s.records_accepted;
    report.latency.Merge(s.latency);
    for (size_t i = 0; i < s.http.size(); ++i) {
      if (s.http[i] > 0) report.http_status[static_cast<int>(i)] += s.http[i];
    }
    for (const auto& [k, v] : s.errors) report.errors[k] += v;
    for (size_t i = 0; i < records.size(); ++i) records[i] += s.records[i];
    for (const auto& [k, v] : s.other_record_status) report.record_status[k] += v;
    for (auto [kind, counts] :
         {std::pair{&report.fresh, s.kinds[0]}, std::pair{&report.retry, s.kinds[1]},
          std::pair{&report.conflict, s.kinds[2]}}) {
      kind->requests += counts.requests;
      kind->unexpected += counts.unexpected;
    }
  }
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i] > 0) report.record_status[kRecordStatusNames[i]] += records[i];
  }
  return report;
}

std::string ReportJson(const RunReport& r) {
  const double seconds = r.seconds > 0 ? r.seconds : 1;
  std::string out = "{\"op\":";
  json::AppendQuoted(&out, r.op == Op::kBatch ? "batch" : "meter");
  out.append(",\"endpoint\":");
  json::AppendQuoted(&out, r.endpoint);
  out.append(",\"run_id\":");
  json::AppendQuoted(&out, r.run_id);
  out.append(",\"connections\":").append(std::to_string(r.connections));
  out.append(",\"seconds\":").append(Fixed(r.seconds, 3));
  out.append(",\"requests\":").append(std::to_string(r.requests));
  out.append(",\"requests_per_s\":").append(Fixed(static_cast<double>(r.requests) / seconds, 1));
  out.append(",\"records_sent\":").append(std::to_string(r.records_sent));
  out.append(",\"records_accepted\":").append(std::to_string(r.records_accepted));
  out.append(",\"records_per_s\":")
      .append(Fixed(static_cast<double>(r.records_accepted) / seconds, 1));
  out.append(",\"latency_ms\":{");
  AppendLatency(&out, "p50", r.latency.Quantile(0.50), true);
  AppendLatency(&out, "p90", r.latency.Quantile(0.90), false);
  AppendLatency(&out, "p99", r.latency.Quantile(0.99), false);
  AppendLatency(&out, "max", static_cast<double>(r.latency.max()), false);
  out.append("},\"http_status\":");
  AppendCountsJson(&out, r.http_status);
  out.append(",\"errors\":");
  AppendCountsJson(&out, r.errors);
  out.append(",\"record_status\":");
  AppendCountsJson(&out, r.record_status);
  out.append(",\"kinds\":{");
  bool first = true;
  for (const auto& [name, k] : {std::pair{"fresh", r.fresh}, std::pair{"retry", r.retry},
                                std::pair{"conflict", r.conflict}}) {
    if (!first) out.push_back(',');
    first = false;
    json::AppendQuoted(&out, name);
    out.append(":{\"requests\":").append(std::to_string(k.requests));
    out.append(",\"unexpected\":").append(std::to_string(k.unexpected)).append("}");
  }
  out.append("}}\n");
  return out;
}

std::string ReportText(const RunReport& r) {
  const double seconds = r.seconds > 0 ? r.seconds : 1;
  auto ms = [](double micros) { return Fixed(micros / 1000, 2); };
  std::string out;
  out.append("meterd-bench ")
      .append(r.op == Op::kBatch ? "BatchMeterUsage" : "MeterUsage")
      .append(" against ")
      .append(r.endpoint)
      .append(" (run ")
      .append(r.run_id)
      .append("): ")
      .append(std::to_string(r.connections))
      .append(" connections, ")
      .append(Fixed(r.seconds, 2))
      .append(" s\n");
  out.append("  requests          ")
      .append(std::to_string(r.requests))
      .append("  (")
      .append(Fixed(static_cast<double>(r.requests) / seconds, 1))
      .append("/s)\n");
  out.append("  records sent      ").append(std::to_string(r.records_sent)).append("\n");
  out.append("  records accepted  ")
      .append(std::to_string(r.records_accepted))
      .append("  (")
      .append(Fixed(static_cast<double>(r.records_accepted) / seconds, 1))
      .append("/s)\n");
  out.append("  latency ms        p50 ")
      .append(ms(r.latency.Quantile(0.50)))
      .append("  p90 ")
      .append(ms(r.latency.Quantile(0.90)))
      .append("  p99 ")
      .append(ms(r.latency.Quantile(0.99)))
      .append("  max ")
      .append(ms(static_cast<double>(r.latency.max())))
      .append("\n");
  out.append("  http status       ").append(CountsText(r.http_status)).append("\n");
  out.append("  errors            ").append(CountsText(r.errors)).append("\n");
  out.append("  record status     ").append(CountsText(r.record_status)).append("\n");
  out.append("  kinds             ");
  const char* separator = "";
  for (const auto& [name, k] : {std::pair{"fresh", r.fresh}, std::pair{"retry", r.retry},
                                std::pair{"conflict", r.conflict}}) {
    out.append(separator)
        .append(name)
        .append("=")
        .append(std::to_string(k.requests))
        .append(" (")
        .append(std::to_string(k.unexpected))
        .append(" unexpected)");
    separator = "  ";
  }
  out.append("\n");
  return out;
}

}  // namespace meterd::bench
