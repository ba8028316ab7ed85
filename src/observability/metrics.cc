#include "observability/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>

namespace meterd::observability {

namespace {

size_t HashLabels(std::span<const std::string_view> values) {
  size_t h = 0xcbf29ce484222325ULL;
  for (std::string_view v : values) {
    h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

bool SameLabels(const Series& series, std::span<const std::string_view> values, size_t n) {
  const auto& have = series.label_values();
  for (size_t i = 0; i < n; ++i) {
    std::string_view want = i < values.size() ? values[i] : std::string_view();
    if (have[i] != want) return false;
  }
  return true;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `name{a="x",b="y"` plus `extra` (already formatted, e.g. `le="0.5"`), then `}` - or `name`
// alone when there is no label at all.
void AppendSeriesName(std::string* out, std::string_view name, const MetricSpec& spec,
                      const Series& series, std::string_view extra = {}) {
  out->append(name);
  if (spec.labels.empty() && extra.empty()) return;
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < spec.labels.size(); ++i) {
    if (!first) out->push_back(',');
    first = false;
    out->append(spec.labels[i]);
    out->append("=\"");
    out->append(EscapeLabelValue(series.label_values()[i]));
    out->push_back('"');
  }
  if (!extra.empty()) {
    if (!first) out->push_back(',');
    out->append(extra);
  }
  out->push_back('}');
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  // The shortest text that reads back as the same double ("0.005", not "0.0050000000000000001").
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

Series::Series(const MetricSpec& spec, std::vector<std::string> label_values)
    : bounds_(&spec.buckets), label_values_(std::move(label_values)) {
  if (spec.type == MetricType::kHistogram) {
    buckets_ = std::make_unique<std::atomic<uint64_t>[]>(spec.buckets.size() + 1);
    for (size_t i = 0; i <= spec.buckets.size(); ++i) buckets_[i].store(0);
  }
}

void Series::Observe(double value) {
  // The first bound >= value; past the end is +Inf.
  size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), value) - bounds_->begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

uint64_t Series::CumulativeBucket(size_t i) const {
  uint64_t total = 0;
  for (size_t b = 0; b <= i && b <= bounds_->size(); ++b) {
    total += buckets_[b].load(std::memory_order_relaxed);
  }
  return total;
}

Family::Family(const MetricSpec& spec) : spec_(spec) {
  overflow_ = std::make_unique<Series>(
      spec, std::vector<std::string>(spec.labels.size(), std::string("overflow")));
}

Family::~Family() {
  for (auto& slot : slots_) delete slot.load(std::memory_order_relaxed);
}

Series& Family::With(std::initializer_list<std::string_view> label_values) {
  return With(std::span<const std::string_view>(label_values.begin(), label_values.size()));
}

Series& Family::With(std::span<const std::string_view> label_values) {
  const size_t n = spec_.labels.size();
  const size_t hash = HashLabels(label_values.first(std::min(n, label_values.size())));
  for (size_t probe = 0; probe < kSlots; ++probe) {
    Series* s = slots_[(hash + probe) & (kSlots - 1)].load(std::memory_order_acquire);
    if (s == nullptr) break;  // not created yet
    if (SameLabels(*s, label_values, n)) return *s;
  }
  return Create(label_values, hash);
}

Series& Family::Create(std::span<const std::string_view> label_values, size_t hash) {
  std::lock_guard<std::mutex> lock(create_mu_);
  const size_t n = spec_.labels.size();
  // Probe again under the lock: another thread may have created it meanwhile.
  for (size_t probe = 0; probe < kSlots; ++probe) {
    std::atomic<Series*>& slot = slots_[(hash + probe) & (kSlots - 1)];
    Series* s = slot.load(std::memory_order_acquire);
    if (s != nullptr) {
      if (SameLabels(*s, label_values, n)) return *s;
      continue;
    }
    if (created_ >= kMaxSeries) return *overflow_;
    std::vector<std::string> values(n);
    for (size_t i = 0; i < n && i < label_values.size(); ++i) {
      values[i] = std::string(label_values[i]);
    }
    auto* created = new Series(spec_, std::move(values));
    ++created_;
    slot.store(created, std::memory_order_release);
    return *created;
  }
  return *overflow_;
}

std::vector<const Series*> Family::AllSeries() const {
  std::vector<const Series*> out;
  for (const auto& slot : slots_) {
    if (const Series* s = slot.load(std::memory_order_acquire)) out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const Series* a, const Series* b) { return a->label_values() < b->label_values(); });
  if (overflow_->value() != 0 || overflow_->count() != 0) out.push_back(overflow_.get());
  return out;
}

Registry::Registry(std::span<const MetricSpec> specs) {
  families_.reserve(specs.size());
  for (const MetricSpec& spec : specs) families_.push_back(std::make_unique<Family>(spec));
}

void Registry::AddCollector(std::function<void()> collect) {
  std::lock_guard<std::mutex> lock(render_mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() {
  std::lock_guard<std::mutex> lock(render_mu_);
  for (const auto& collect : collectors_) collect();
  std::string out;
  out.reserve(8192);
  for (const auto& family : families_) {
    const MetricSpec& spec = family->spec();
    out.append("# HELP ").append(spec.name).push_back(' ');
    out.append(EscapeHelp(spec.help)).push_back('\n');
    out.append("# TYPE ").append(spec.name).push_back(' ');
    out.append(TypeName(spec.type)).push_back('\n');
    for (const Series* s : family->AllSeries()) {
      if (spec.type != MetricType::kHistogram) {
        AppendSeriesName(&out, spec.name, spec, *s);
        out.append(" ").append(std::to_string(s->value())).push_back('\n');
        continue;
      }
      // Cumulated from one read of each bucket, so that _count is the +Inf bucket exactly.
      const std::string bucket = std::string(spec.name) + "_bucket";
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= spec.buckets.size(); ++i) {
        cumulative += s->Bucket(i);
        const double bound =
            i < spec.buckets.size() ? spec.buckets[i] : std::numeric_limits<double>::infinity();
        AppendSeriesName(&out, bucket, spec, *s, "le=\"" + FormatNumber(bound) + "\"");
        out.append(" ").append(std::to_string(cumulative)).push_back('\n');
      }
      const uint64_t infinity_bucket = cumulative;
      AppendSeriesName(&out, std::string(spec.name) + "_sum", spec, *s);
      out.append(" ").append(FormatNumber(s->sum())).push_back('\n');
      AppendSeriesName(&out, std::string(spec.name) + "_count", spec, *s);
      out.append(" ").append(std::to_string(infinity_bucket)).push_back('\n');
    }
  }
  return out;
}

}  // namespace meterd::observability
