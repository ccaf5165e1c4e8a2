// Small-sample statistics for `moebench verdict`; see stats.h. The t distribution is evaluated
// through the regularized incomplete beta function, whose continued fraction (evaluated with the
// modified Lentz method) converges quickly on the side of its crossover point where it is used.
#include "suite/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace moebench::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

// Beyond this many degrees of freedom the t distribution is taken as the normal one: the
// quantiles differ by about (z^3 + z) / (4 df) < 3e-7 there, while lgamma of such large
// arguments would start to cost digits in the incomplete beta's prefactor.
constexpr double kNormalDf = 1e7;

// The continued fraction of I_x(a, b) without its prefactor x^a (1-x)^b / (a B(a, b)):
// 1 / (1 + d1 / (1 + d2 / (1 + ...))) with
//   d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
//   d_{2m}   =  m (b - m) x / ((a + 2m - 1)(a + 2m)),
// evaluated front to back (modified Lentz), so no fixed depth has to be chosen in advance.
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300;  // keeps a zero denominator from dividing by zero
  constexpr double kEps = 1e-16;
  constexpr int kMaxTerms = 100000;
  const auto guard = [](double v) { return std::fabs(v) < kTiny ? kTiny : v; };
  double c = 1;
  double d = 1 / guard(1 - (a + b) * x / (a + 1));  // the d1 term folded into the start
  double h = d;
  for (int m = 1; m <= kMaxTerms; ++m) {
    const double two_m = 2.0 * m;
    const double even = m * (b - m) * x / ((a + two_m - 1) * (a + two_m));
    d = 1 / guard(1 + even * d);
    c = guard(1 + even / c);
    h *= d * c;
    const double odd = -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1));
    d = 1 / guard(1 + odd * d);
    c = guard(1 + odd / c);
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < kEps) break;
  }
  return h;
}

// I_x(a, b) with y = 1 - x passed separately, so that a caller who knows a tiny y exactly (the
// t tails) does not lose it to rounding in 1 - x.
double regularized_beta(double a, double b, double x, double y) {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log(y);
  // The fraction converges fast below (a + 1) / (a + b + 2); above it, the symmetry
  // I_x(a, b) = 1 - I_{1-x}(b, a) moves the argument below it.
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
  return 1 - std::exp(log_front) * beta_continued_fraction(b, a, y) / b;
}

void check_df(double df) {
  if (!(df > 0)) {
    throw std::invalid_argument("t distribution: degrees of freedom must be > 0, got " +
                                std::to_string(df));
  }
}

void check_level(double level) {
  if (!(level > 0 && level < 1)) {
    throw std::invalid_argument("confidence level must lie in (0, 1), got " +
                                std::to_string(level));
  }
}

// P(T > t) for t >= 0: 0.5 · I_{df/(df+t²)}(df/2, 1/2).
double t_upper_tail(double t, double df) {
  if (df >= kNormalDf) return 0.5 * std::erfc(t / std::sqrt(2.0));
  const double t2 = t * t;
  return 0.5 * regularized_beta(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
}

double t_density(double t, double df) {
  if (df >= kNormalDf) return std::exp(-0.5 * t * t) / std::sqrt(2 * kPi);
  const double log_c = std::lgamma((df + 1) / 2) - std::lgamma(df / 2) - 0.5 * std::log(df * kPi);
  return std::exp(log_c - (df + 1) / 2 * std::log1p(t * t / df));
}

// The t >= 0 at which a decreasing upper tail equals q (0 < q <= 0.5): a bracket found by
// doubling, then Newton steps (the tail's derivative is -density) that fall back to bisection
// whenever they would leave the bracket, so it always converges.
double solve_upper_tail(double q, double df) {
  double lo = 0;
  double hi = 1;
  while (t_upper_tail(hi, df) > q) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return kInf;
  }
  double t = 0.5 * (lo + hi);
  for (int i = 0; i < 300; ++i) {
    const double f = t_upper_tail(t, df) - q;  // > 0: t is still too small
    if (f == 0) return t;
    (f > 0 ? lo : hi) = t;
    double next = t + f / t_density(t, df);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::fabs(next - t) <= 1e-14 * std::max(1.0, std::fabs(t))) return next;
    t = next;
  }
  return t;
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0)) {
    throw std::invalid_argument("incomplete beta: a and b must be > 0");
  }
  if (std::isnan(x)) return kNaN;
  if (x < 0 || x > 1) throw std::invalid_argument("incomplete beta: x must lie in [0, 1]");
  return regularized_beta(a, b, x, 1 - x);
}

double normal_cdf(double z) {
  if (std::isnan(z)) return kNaN;
  return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

double normal_quantile(double p) { return t_quantile(p, kInf); }

double t_cdf(double t, double df) {
  check_df(df);
  if (std::isnan(t)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  return t < 0 ? t_upper_tail(-t, df) : 1 - t_upper_tail(t, df);
}

double t_quantile(double p, double df) {
  check_df(df);
  if (std::isnan(p)) return kNaN;
  if (p < 0 || p > 1) throw std::invalid_argument("t quantile: p must lie in [0, 1]");
  if (p == 0) return -kInf;
  if (p == 1) return kInf;
  if (p == 0.5) return 0;
  // Solve in the smaller tail, where the probability has all its digits.
  return p > 0.5 ? solve_upper_tail(1 - p, df) : -solve_upper_tail(p, df);
}

double mean(const std::vector<double>& x) {
  if (x.empty()) return kNaN;
  double sum = 0;
  for (double v : x) sum += v;
  return sum / static_cast<double>(x.size());
}

double sample_sd(const std::vector<double>& x) {
  if (x.size() < 2) return kNaN;
  // Two passes: subtracting the mean first keeps small spreads of large values exact.
  const double m = mean(x);
  double squares = 0;
  for (double v : x) squares += (v - m) * (v - m);
  return std::sqrt(squares / static_cast<double>(x.size() - 1));
}

Interval t_interval(const std::vector<double>& x, double level) {
  return t_interval(mean(x), sample_sd(x), static_cast<int>(x.size()), level);
}

Interval t_interval(double mean, double sd, int n, double level) {
  check_level(level);
  Interval r;
  r.level = level;
  if (n <= 0) return r;
  r.n = n;
  r.mean = mean;
  if (n == 1) return r;
  r.sd = sd;
  r.half_width = t_quantile((1 + level) / 2, n - 1) * sd / std::sqrt(static_cast<double>(n));
  r.low = mean - r.half_width;
  r.high = mean + r.half_width;
  return r;
}

std::vector<double> paired_differences(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    throw std::invalid_argument("paired differences: the samples have " + std::to_string(a.size()) +
                                " and " + std::to_string(b.size()) + " values");
  }
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

TostResult tost(const std::vector<double>& x, double margin, double alpha) {
  return tost(mean(x), sample_sd(x), static_cast<int>(x.size()), margin, alpha);
}

TostResult tost(double mean, double sd, int n, double margin, double alpha) {
  if (!(margin > 0)) throw std::invalid_argument("TOST: the margin must be > 0");
  if (!(alpha > 0 && alpha < 0.5)) throw std::invalid_argument("TOST: alpha must lie in (0, 0.5)");
  TostResult r;
  if (n < 2 || std::isnan(mean) || std::isnan(sd)) return r;
  const double se = sd / std::sqrt(static_cast<double>(n));
  if (se == 0) {
    // Every value is the mean: each bound is rejected exactly when the mean is beyond it.
    r.p_lower = mean > -margin ? 0 : 1;
    r.p_upper = mean < margin ? 0 : 1;
  } else {
    r.p_lower = t_cdf(-(mean + margin) / se, n - 1);  // P(T >= (mean + margin) / se)
    r.p_upper = t_cdf((mean - margin) / se, n - 1);
  }
  r.p_value = std::max(r.p_lower, r.p_upper);
  r.equivalent = r.p_value < alpha;
  return r;
}

std::optional<int> seeds_for_half_width(double sd, double half_width, double level, int max_n) {
  check_level(level);
  if (std::isnan(sd) || std::isnan(half_width) || sd < 0 || !(half_width > 0)) return std::nullopt;
  if (max_n < 2) return std::nullopt;
  if (sd == 0) return 2;
  const double p = (1 + level) / 2;
  // t quantiles exceed the normal one, so no n <= (z · sd / half_width)² can succeed: start
  // there and walk up (a few steps at most, as t approaches z).
  const double ratio = normal_quantile(p) * sd / half_width;
  const double lower = ratio * ratio;
  if (lower > max_n) return std::nullopt;
  for (int n = std::max(2, static_cast<int>(std::floor(lower))); n <= max_n; ++n) {
    if (t_quantile(p, n - 1) * sd / std::sqrt(static_cast<double>(n)) < half_width) return n;
  }
  return std::nullopt;
}

std::optional<int> seeds_needed(double mean, double sd, double level, int max_n) {
  if (std::isnan(mean) || mean == 0) return std::nullopt;
  return seeds_for_half_width(sd, std::fabs(mean), level, max_n);
}

double ols_slope(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) {
    throw std::invalid_argument("least-squares slope: " + std::to_string(x.size()) + " x and " +
                                std::to_string(y.size()) + " y values");
  }
  if (x.size() < 2) return kNaN;
  const double mx = mean(x);
  const double my = mean(y);
  double sxy = 0;
  double sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  return sxx == 0 ? kNaN : sxy / sxx;
}

}  // namespace moebench::stats
