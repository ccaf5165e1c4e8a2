// Small-sample statistics for paired seed comparisons (`moebench verdict`): Student-t CDF and
// quantiles, the t-interval of a mean, the two one-sided tests (TOST) of equivalence, the seeds
// an observed spread would need, and a least-squares slope. Torch-free and dependency-free: the
// t distribution comes from the regularized incomplete beta function (a continued fraction).
// Spec: shared/DESIGN.md "Verdicts, not just numbers".
//
// Conventions: a figure that a sample cannot give (the mean of no values, the spread of one) is
// NaN, as elsewhere in the suite (suite/store.h); nothing here returns NaN otherwise. Invalid
// arguments (a level outside (0, 1), df <= 0, a margin <= 0) throw std::invalid_argument.
#pragma once

#include <limits>
#include <optional>
#include <vector>

namespace moebench::stats {

// Regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1].
double incomplete_beta(double a, double b, double x);

// The standard normal distribution: CDF and quantile (p in [0, 1]; 0 and 1 give -inf, +inf).
double normal_cdf(double z);
double normal_quantile(double p);

// Student's t distribution with df > 0 degrees of freedom (df = +inf is the normal one).
// t_cdf(±inf) = 1 or 0; t_quantile(0) = -inf, t_quantile(1) = +inf; a NaN argument gives NaN.
double t_cdf(double t, double df);
double t_quantile(double p, double df);

// NaN for an empty sample.
double mean(const std::vector<double>& x);
// The sample standard deviation (divisor n - 1); NaN for fewer than two values.
double sample_sd(const std::vector<double>& x);

// The two-sided t-interval of a sample's mean: mean ± t_{(1+level)/2, n-1} · sd / sqrt(n).
//  - n = 0: every figure NaN.
//  - n = 1: mean is the value; sd, half_width, low and high are NaN (one value has no spread).
//  - n >= 2 with sd = 0: half_width = 0 and low = high = mean (the data show no spread at all).
struct Interval {
  int n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double sd = std::numeric_limits<double>::quiet_NaN();
  double half_width = std::numeric_limits<double>::quiet_NaN();
  double low = std::numeric_limits<double>::quiet_NaN();
  double high = std::numeric_limits<double>::quiet_NaN();
  double level = 0.95;
  bool defined() const { return n >= 2; }  // low and high are numbers
};
Interval t_interval(const std::vector<double>& x, double level = 0.95);
Interval t_interval(double mean, double sd, int n, double level = 0.95);

// a[i] - b[i]; throws std::invalid_argument when the sizes differ.
std::vector<double> paired_differences(const std::vector<double>& a, const std::vector<double>& b);

// Two one-sided t-tests of H0: mean <= -margin (p_lower) and H0: mean >= +margin (p_upper). The
// mean is equivalent to 0 within ±margin when both are rejected at level alpha: p_value (the
// larger of the two) < alpha, which is the same as the (1 - 2·alpha) t-interval lying inside
// (-margin, +margin).
//  - n < 2, or a NaN mean or sd: no test is possible; every p value is 1, equivalent is false.
//  - sd = 0 (n >= 2): p_lower is 0 when mean > -margin, p_upper is 0 when mean < +margin, and
//    each is 1 otherwise.
struct TostResult {
  double p_lower = 1;
  double p_upper = 1;
  double p_value = 1;
  bool equivalent = false;
};
TostResult tost(const std::vector<double>& x, double margin, double alpha = 0.05);
TostResult tost(double mean, double sd, int n, double margin, double alpha = 0.05);

// The smallest n >= 2 for which t_{(1+level)/2, n-1} · sd / sqrt(n) < half_width, i.e. the
// seeds a sample with this spread needs for its interval to be narrower than half_width. 2 when
// sd = 0; nullopt when half_width <= 0, an argument is NaN, or the answer exceeds max_n.
std::optional<int> seeds_for_half_width(double sd, double half_width, double level = 0.95,
                                        int max_n = 10000);
// The seeds whose interval, at the observed mean and sd, would exclude 0:
// seeds_for_half_width(sd, |mean|, level, max_n); nullopt when the mean is 0 (no count makes an
// interval around 0 exclude 0) or beyond max_n.
std::optional<int> seeds_needed(double mean, double sd, double level = 0.95, int max_n = 10000);

// The ordinary least-squares slope of y on x; NaN with fewer than two points or when every x is
// the same. Throws std::invalid_argument when the sizes differ.
double ols_slope(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace moebench::stats
