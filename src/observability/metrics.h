// A small metrics registry and its Prometheus text exposition (format 0.0.4). The metrics are
// declared once, in a table of MetricSpec (see meterd_metrics.h for meterd's own table); code
// updates them through Family::With(label values), and Registry::Render writes every series.
//
// The hot path is lock-free: a series that exists is found in a fixed open-addressing table of
// atomic pointers and updated with relaxed atomics. Only the first use of a label combination
// takes the family's mutex (to create the series). Series are never removed.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meterd::observability {

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric, as declared. `name` and `labels` must be valid Prometheus names; `buckets` (the
// histogram's upper bounds, ascending, without +Inf) only for histograms.
struct MetricSpec {
  std::string_view name;
  MetricType type;
  std::string_view help;
  std::vector<std::string_view> labels;
  std::vector<double> buckets;
};

// One label combination of a metric. Thread-safe; every update is a relaxed atomic.
class Series {
 public:
  Series(const MetricSpec& spec, std::vector<std::string> label_values);

  // Counters: add `n`. Gauges: add `n` (may be negative).
  void Add(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  // Gauges, and counters mirrored from a source that counts itself (set at scrape time).
  void Set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  // Histograms: one observation.
  void Observe(double value);

  int64_t value() const { return value_.load(std::memory_order_relaxed); }
  // Histograms: observations so far (the +Inf bucket, so that the two always agree).
  uint64_t count() const { return buckets_ ? CumulativeBucket(bounds_->size()) : 0; }
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  // Observations <= buckets[i] (cumulative, as exposed); i == buckets.size() is +Inf.
  uint64_t CumulativeBucket(size_t i) const;
  // Observations in bucket i alone (i == buckets.size(): above the last bound).
  uint64_t Bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  const std::vector<std::string>& label_values() const { return label_values_; }

 private:
  const std::vector<double>* bounds_;
  std::vector<std::string> label_values_;
  std::atomic<int64_t> value_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket (not cumulative), +Inf last
  std::atomic<double> sum_{0};
};

// Every series of one metric.
class Family {
 public:
  // At most this many label combinations; further ones share one series whose label values
  // are all "overflow" (labels here come from fixed sets: this bounds a mistake, not traffic).
  static constexpr size_t kMaxSeries = 1024;

  explicit Family(const MetricSpec& spec);
  ~Family();
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The series of these label values (as many as the spec has labels; missing ones are "").
  // Lock-free once the series exists.
  Series& With(std::initializer_list<std::string_view> label_values);
  Series& With(std::span<const std::string_view> label_values);

  const MetricSpec& spec() const { return spec_; }
  // Every series, sorted by label values.
  std::vector<const Series*> AllSeries() const;

 private:
  static constexpr size_t kSlots = 2 * kMaxSeries;  // power of two
  Series& Create(std::span<const std::string_view> label_values, size_t hash);

  const MetricSpec& spec_;
  std::array<std::atomic<Series*>, kSlots> slots_{};
  std::mutex create_mu_;
  size_t created_ = 0;  // under create_mu_
  std::unique_ptr<Series> overflow_;
};

// The metrics of one table. Thread-safe.
class Registry {
 public:
  // `specs` must outlive the registry. Families are indexed as the table is.
  explicit Registry(std::span<const MetricSpec> specs);

  Family& family(size_t index) { return *families_[index]; }
  size_t size() const { return families_.size(); }

  // `collect` runs before every Render (under the render lock): it copies polled figures (queue
  // depth, connection counts) into their series. Add collectors before Render is first called.
  void AddCollector(std::function<void()> collect);

  // Every metric in the Prometheus text format 0.0.4, in table order.
  std::string Render();

 private:
  std::vector<std::unique_ptr<Family>> families_;
  std::mutex render_mu_;
  std::vector<std::function<void()>> collectors_;
};

// The text format's escaping: label values escape \ " and newline; HELP text \ and newline.
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view help);
// A sample value or bucket bound as the text format writes it ("0.005", "1", "+Inf", "NaN").
std::string FormatNumber(double value);

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace meterd::observability
