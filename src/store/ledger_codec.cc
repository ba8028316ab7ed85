#include "store/ledger_codec.h"

#include <openssl/sha.h>

#include "common/time_util.h"

namespace meterd::store::ledger {

const std::vector<std::string>& FamilyNames() {
  static const std::vector<std::string> names = {
      "default",      "usage", "usage_by_time",       "usage_by_account", "dedup", "client_tokens",
      "entitlements", "runs",  "registration_tokens", "catalog",          "audit", "rollups"};
  return names;
}

namespace {
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
}  // namespace

void PutOrderedInt(std::string* out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(u >> shift));
}

void PutKeyString(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

void PutFixed(std::string* out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  for (int shift = 0; shift < 64; shift += 8) out->push_back(static_cast<char>(u >> shift));
}

std::string FixedValue(int64_t v) {
  std::string out;
  PutFixed(&out, v);
  return out;
}

bool Reader::OrderedInt(int64_t* v) {
  if (rest_.size() < 8) return false;
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(rest_[i]);
  *v = static_cast<int64_t>(u ^ (uint64_t{1} << 63));
  rest_.remove_prefix(8);
  return true;
}

bool Reader::KeyString(std::string* s) {
  uint64_t size = 0;
  for (int shift = 0;; shift += 7) {
    if (rest_.empty() || shift > 63) return false;
    const auto byte = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    size |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (size > rest_.size()) return false;
  s->assign(rest_.data(), size);
  rest_.remove_prefix(size);
  return true;
}

bool Reader::Fixed(int64_t* v) {
  if (rest_.size() < 8) return false;
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<uint8_t>(rest_[i]);
  *v = static_cast<int64_t>(u);
  rest_.remove_prefix(8);
  return true;
}

bool ParseFixedValue(std::string_view bytes, int64_t* v) {
  Reader r(bytes);
  return r.Fixed(v) && r.done();
}

// --- ledger ---------------------------------------------------------------------------------
std::string UsageKey(int64_t seq) {
  std::string key;
  PutOrderedInt(&key, seq);
  return key;
}

bool ParseUsageKey(std::string_view key, int64_t* seq) {
  Reader r(key);
  return r.OrderedInt(seq) && r.done();
}

std::string UsageByTimeKey(int64_t timestamp_ms, int64_t seq) {
  std::string key;
  key.reserve(16);
  PutOrderedInt(&key, timestamp_ms);
  PutOrderedInt(&key, seq);
  return key;
}

bool ParseUsageByTimeKey(std::string_view key, int64_t* timestamp_ms, int64_t* seq) {
  Reader r(key);
  return r.OrderedInt(timestamp_ms) && r.OrderedInt(seq) && r.done();
}

std::string DedupKey(std::string_view dedup_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(dedup_key.data()), dedup_key.size(), digest);
  std::string key;
  key.reserve(24);
  PutOrderedInt(&key, DedupKeyHour(dedup_key));
  key.append(reinterpret_cast<const char*>(digest), 16);
  return key;
}

int64_t DedupKeyHour(std::string_view dedup_key) {
  if (dedup_key.empty() || (dedup_key[0] != 'B' && dedup_key[0] != 'M' && dedup_key[0] != 'T')) {
    return 0;
  }
  const size_t bar = dedup_key.rfind('|');
  if (bar == std::string_view::npos) return 0;
  const std::string_view part = dedup_key.substr(bar + 1);  // "<digits>:<hour_ms>"
  const size_t colon = part.find(':');
  if (colon == std::string_view::npos) return 0;
  const std::string_view digits = part.substr(colon + 1);
  if (digits.empty() || digits.size() > 18 ||
      std::to_string(digits.size()) != part.substr(0, colon)) {
    return 0;
  }
  int64_t hour_ms = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    hour_ms = hour_ms * 10 + (c - '0');
  }
  return hour_ms;
}

std::array<Entry, 4> NewUsageEntries(const UsageRow& row, int64_t seq, std::string dedup_digest) {
  return {
      Entry{kUsage, UsageKey(seq), EncodeUsageRow(row)},
      Entry{kUsageByTime, UsageByTimeKey(row.timestamp_ms, seq), ""},
      Entry{kUsageByAccount, UsageByAccountKey(row.customer_account, row.timestamp_ms, seq), ""},
      Entry{kDedup, std::move(dedup_digest), EncodeDedupValue(seq)}};
}

std::array<Entry, 4> NewUsageEntries(const UsageRow& row, int64_t seq) {
  return NewUsageEntries(row, seq, DedupKey(row.dedup_key));
}

std::string EncodeUsageRow(const UsageRow& row) {
  std::string v;
  v.reserve(64 + row.record_id.size() + row.dedup_key.size() + row.license_arn.size() +
            row.allocations_json.size() + row.request_id.size() + row.customer_identifier.size());
  for (const std::string* s :
       {&row.record_id, &row.dedup_key, &row.source, &row.region, &row.product_code,
        &row.seller_account, &row.customer_identifier, &row.customer_account, &row.license_arn,
        &row.workload_id, &row.dimension, &row.allocations_json, &row.request_id}) {
    PutKeyString(&v, *s);
  }
  PutFixed(&v, row.usage_hour_ms);
  PutFixed(&v, row.timestamp_ms);
  PutFixed(&v, row.quantity);
  PutFixed(&v, row.received_ms);
  return v;
}

bool DecodeUsageRow(std::string_view value, UsageRow* row) {
  Reader r(value);
  for (std::string* s :
       {&row->record_id, &row->dedup_key, &row->source, &row->region, &row->product_code,
        &row->seller_account, &row->customer_identifier, &row->customer_account, &row->license_arn,
        &row->workload_id, &row->dimension, &row->allocations_json, &row->request_id}) {
    if (!r.KeyString(s)) return false;
  }
  return r.Fixed(&row->usage_hour_ms) && r.Fixed(&row->timestamp_ms) && r.Fixed(&row->quantity) &&
         r.Fixed(&row->received_ms) && r.done();
}

std::string UsageByAccountPrefix(int64_t day_ms, std::string_view account) {
  std::string key;
  PutOrderedInt(&key, day_ms);
  PutKeyString(&key, account);
  return key;
}

std::string UsageByAccountKey(std::string_view account, int64_t timestamp_ms, int64_t seq) {
  std::string key = UsageByAccountPrefix(FloorToDay(timestamp_ms), account);
  PutOrderedInt(&key, timestamp_ms);
  PutOrderedInt(&key, seq);
  return key;
}

bool ParseUsageByAccountKey(std::string_view key, std::string* account, int64_t* timestamp_ms,
                            int64_t* seq) {
  Reader r(key);
  int64_t day_ms = 0;
  return r.OrderedInt(&day_ms) && r.KeyString(account) && r.OrderedInt(timestamp_ms) &&
         r.OrderedInt(seq) && r.done() && day_ms == FloorToDay(*timestamp_ms);
}

bool ParseLayout1UsageByAccountKey(std::string_view key, std::string* account,
                                   int64_t* timestamp_ms, int64_t* seq) {
  Reader r(key);
  return r.KeyString(account) && r.OrderedInt(timestamp_ms) && r.OrderedInt(seq) && r.done();
}

std::string EncodeDedupValue(int64_t seq) { return FixedValue(seq); }

bool DecodeDedupValue(std::string_view value, int64_t* seq) { return ParseFixedValue(value, seq); }

bool DecodeLayout1DedupEntry(std::string_view value, std::string* dedup_key, int64_t* seq) {
  Reader r(value);
  std::string record_id;
  int64_t quantity = 0, timestamp_ms = 0;
  return r.KeyString(dedup_key) && r.KeyString(&record_id) && r.Fixed(&quantity) &&
         r.Fixed(&timestamp_ms) && r.Fixed(seq) && r.done();
}

// --- small tables -----------------------------------------------------------------------------
std::string PairKey(std::string_view first, std::string_view second) {
  std::string key;
  PutKeyString(&key, first);
  PutKeyString(&key, second);
  return key;
}

bool ParsePairKey(std::string_view key, std::string* first, std::string* second) {
  Reader r(key);
  return r.KeyString(first) && r.KeyString(second) && r.done();
}

std::string EncodeClientToken(const ClientTokenEntry& e) {
  std::string v;
  PutKeyString(&v, e.fingerprint);
  PutKeyString(&v, e.record_id);
  PutFixed(&v, e.created_ms);
  return v;
}

bool DecodeClientToken(std::string_view value, ClientTokenEntry* e) {
  Reader r(value);
  return r.KeyString(&e->fingerprint) && r.KeyString(&e->record_id) && r.Fixed(&e->created_ms) &&
         r.done();
}

std::string EncodeRun(int64_t started_ms, std::optional<int64_t> stopped_ms) {
  std::string v;
  PutFixed(&v, started_ms);
  if (stopped_ms) PutFixed(&v, *stopped_ms);
  return v;
}

bool DecodeRun(std::string_view value, int64_t* started_ms, std::optional<int64_t>* stopped_ms) {
  Reader r(value);
  if (!r.Fixed(started_ms)) return false;
  stopped_ms->reset();
  if (r.done()) return true;
  int64_t stopped = 0;
  if (!r.Fixed(&stopped) || !r.done()) return false;
  *stopped_ms = stopped;
  return true;
}

std::string EncodeRegistrationToken(const RegistrationTokenRow& row) {
  std::string v;
  PutKeyString(&v, row.seller_account);
  PutKeyString(&v, row.product_code);
  PutKeyString(&v, row.customer_account);
  PutKeyString(&v, row.license_arn);
  PutFixed(&v, row.issued_ms);
  return v;
}

bool DecodeRegistrationToken(std::string_view value, RegistrationTokenRow* row) {
  Reader r(value);
  return r.KeyString(&row->seller_account) && r.KeyString(&row->product_code) &&
         r.KeyString(&row->customer_account) && r.KeyString(&row->license_arn) &&
         r.Fixed(&row->issued_ms) && r.done();
}

std::string CatalogKey(int64_t version) {
  std::string key;
  PutOrderedInt(&key, version);
  return key;
}

std::string EncodeCatalogVersion(const CatalogVersion& v) {
  std::string out;
  PutKeyString(&out, v.document);
  PutFixed(&out, v.changed_ms);
  PutKeyString(&out, v.change);
  return out;
}

bool DecodeCatalogVersion(std::string_view value, CatalogVersion* v) {
  Reader r(value);
  return r.KeyString(&v->document) && r.Fixed(&v->changed_ms) && r.KeyString(&v->change) &&
         r.done();
}

// --- audit trail ----------------------------------------------------------------------------
std::string AuditKey(int64_t event_time_ms, std::string_view event_id) {
  std::string key;
  key.reserve(8 + 1 + event_id.size());
  PutOrderedInt(&key, event_time_ms);
  PutKeyString(&key, event_id);
  return key;
}

bool ParseAuditKey(std::string_view key, int64_t* event_time_ms, std::string* event_id) {
  Reader r(key);
  return r.OrderedInt(event_time_ms) && r.KeyString(event_id) && r.done();
}

std::string EncodeAuditEvent(const AuditEventRow& row) {
  std::string v;
  v.reserve(row.event_json.size() + 96);
  for (const std::string* s : {&row.event_source, &row.event_name, &row.account_id,
                               &row.access_key_id, &row.error_code, &row.event_json}) {
    PutKeyString(&v, *s);
  }
  return v;
}

bool DecodeAuditEvent(std::string_view value, AuditEventRow* row) {
  Reader r(value);
  for (std::string* s : {&row->event_source, &row->event_name, &row->account_id,
                         &row->access_key_id, &row->error_code, &row->event_json}) {
    if (!r.KeyString(s)) return false;
  }
  return r.done();
}

// --- rollups --------------------------------------------------------------------------------
std::string RollupPeriodPrefix(Granularity g, int64_t period_ms) {
  std::string key(1, static_cast<char>(g));
  PutOrderedInt(&key, period_ms);
  return key;
}

std::string RollupKeyBytes(const RollupKey& k) {
  std::string key = RollupPeriodPrefix(k.granularity, k.period_ms);
  for (const std::string* s :
       {&k.product_code, &k.customer_account, &k.dimension, &k.unit, &k.tag_key, &k.tag_value}) {
    PutKeyString(&key, *s);
  }
  return key;
}

bool ParseRollupKey(std::string_view bytes, RollupKey* k) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) > 2) return false;
  k->granularity = static_cast<Granularity>(bytes[0]);
  Reader r(bytes.substr(1));
  if (!r.OrderedInt(&k->period_ms)) return false;
  for (std::string* s : {&k->product_code, &k->customer_account, &k->dimension, &k->unit,
                         &k->tag_key, &k->tag_value}) {
    if (!r.KeyString(s)) return false;
  }
  return r.done();
}

std::string EncodeRollupDelta(const RollupDelta& d) {
  std::string v;
  PutFixed(&v, d.quantity);
  PutFixed(&v, d.records);
  return v;
}

bool DecodeRollupDelta(std::string_view value, RollupDelta* d) {
  Reader r(value);
  return r.Fixed(&d->quantity) && r.Fixed(&d->records) && r.done();
}

}  // namespace meterd::store::ledger
