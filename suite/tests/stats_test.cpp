// Tests of the verdict statistics against independent values: printed t-table quantiles, the
// closed-form t CDFs of 1 and 2 degrees of freedom, and intervals, TOST p values and seed counts
// worked out by hand in the comments.
#include "suite/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace moebench::stats {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Closed forms (independent of the incomplete beta): df = 1 is the Cauchy distribution,
// F(t) = 1/2 + atan(t)/pi; df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t²)).
double cauchy_cdf(double t) { return 0.5 + std::atan(t) / kPi; }
double t2_cdf(double t) { return 0.5 + t / (2 * std::sqrt(2 + t * t)); }

TEST(StatsTest, IncompleteBetaMatchesClosedForms) {
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b; I_x(2, 2) = 3x² - 2x³.
  for (double x : {0.0, 0.1, 0.37, 0.5, 0.9, 1.0}) {
    EXPECT_NEAR(incomplete_beta(1, 1, x), x, 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(3, 1, x), x * x * x, 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(1, 4, x), 1 - std::pow(1 - x, 4), 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(2, 2, x), 3 * x * x - 2 * x * x * x, 1e-14) << x;
  }
  // I_{1/2}(a, a) = 1/2 by symmetry, for any a.
  EXPECT_NEAR(incomplete_beta(7.5, 7.5, 0.5), 0.5, 1e-13);
  EXPECT_NEAR(incomplete_beta(400, 400, 0.5), 0.5, 1e-11);
  EXPECT_THROW(incomplete_beta(0, 1, 0.5), std::invalid_argument);
  EXPECT_THROW(incomplete_beta(1, 1, 1.5), std::invalid_argument);
}

TEST(StatsTest, TCdfMatchesClosedFormsAndTables) {
  for (double t : {-30.0, -4.0, -1.0, -0.3, 0.0, 0.5, 1.0, 2.5, 12.7062, 100.0}) {
    EXPECT_NEAR(t_cdf(t, 1), cauchy_cdf(t), 1e-13) << t;
    EXPECT_NEAR(t_cdf(t, 2), t2_cdf(t), 1e-13) << t;
  }
  // Table values: P(T_10 <= 1.812) ≈ 0.95, P(T_29 <= 2.045) ≈ 0.975.
  EXPECT_NEAR(t_cdf(1.8125, 10), 0.95, 1e-5);
  EXPECT_NEAR(t_cdf(2.0452, 29), 0.975, 1e-5);
  // Symmetric, and the normal one for infinite df: Phi(1.96) = 0.9750021.
  EXPECT_NEAR(t_cdf(-1.3, 7) + t_cdf(1.3, 7), 1.0, 1e-14);
  EXPECT_NEAR(t_cdf(1.96, kInf), 0.9750021048517795, 1e-12);
  EXPECT_NEAR(normal_cdf(-1.0), 0.15865525393145707, 1e-14);
  EXPECT_EQ(t_cdf(kInf, 3), 1.0);
  EXPECT_EQ(t_cdf(-kInf, 3), 0.0);
  EXPECT_TRUE(std::isnan(t_cdf(std::nan(""), 3)));
  EXPECT_THROW(t_cdf(1, 0), std::invalid_argument);
  EXPECT_THROW(t_cdf(1, -2), std::invalid_argument);
}

TEST(StatsTest, TQuantilesMatchTheTTable) {
  // Two-sided 95% critical values, as printed in t tables (4 decimals).
  EXPECT_NEAR(t_quantile(0.975, 1), 12.7062, 5e-5);
  EXPECT_NEAR(t_quantile(0.975, 2), 4.3027, 5e-5);
  EXPECT_NEAR(t_quantile(0.975, 4), 2.7764, 5e-5);
  EXPECT_NEAR(t_quantile(0.975, 9), 2.2622, 5e-5);
  EXPECT_NEAR(t_quantile(0.975, 17), 2.1098, 5e-5);
  EXPECT_NEAR(t_quantile(0.975, 29), 2.0452, 5e-5);
  EXPECT_NEAR(t_quantile(0.95, 10), 1.8125, 5e-5);
  EXPECT_NEAR(t_quantile(0.95, 2), 2.9200, 5e-5);
  EXPECT_NEAR(t_quantile(0.995, 5), 4.0321, 5e-5);
  // Exact ones: df = 1 gives tan(pi (p - 1/2)), df = 2 gives (2p - 1) sqrt(2 / (4p(1-p))).
  EXPECT_NEAR(t_quantile(0.975, 1), std::tan(kPi * 0.475), 1e-10);
  EXPECT_NEAR(t_quantile(0.9, 2), 0.8 * std::sqrt(2 / (4 * 0.9 * 0.1)), 1e-12);
  // Large df approaches the normal quantile 1.959964.
  EXPECT_NEAR(t_quantile(0.975, 1e6), 1.95996, 1e-5);
  EXPECT_NEAR(t_quantile(0.975, kInf), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normal_quantile(0.95), 1.6448536269514722, 1e-12);
  // Symmetry, the median and the ends.
  EXPECT_NEAR(t_quantile(0.025, 4), -t_quantile(0.975, 4), 1e-13);
  EXPECT_EQ(t_quantile(0.5, 3), 0.0);
  EXPECT_EQ(t_quantile(0.0, 3), -kInf);
  EXPECT_EQ(t_quantile(1.0, 3), kInf);
  EXPECT_THROW(t_quantile(1.5, 3), std::invalid_argument);
  // The quantile inverts the CDF, far into the tails too.
  for (double df : {1.0, 3.0, 12.0, 150.0}) {
    for (double p : {1e-9, 0.001, 0.2, 0.6, 0.99, 1 - 1e-7}) {
      EXPECT_NEAR(t_cdf(t_quantile(p, df), df), p, 1e-8 * std::min(p, 1 - p) + 1e-15)
          << df << " " << p;
    }
  }
}

TEST(StatsTest, MeanAndSampleSd) {
  EXPECT_DOUBLE_EQ(mean({1, 2, 3, 6}), 3.0);
  // Deviations -2, -1, 0, 3: squares 4 + 1 + 0 + 9 = 14, / 3, sqrt = 2.1602469.
  EXPECT_NEAR(sample_sd({1, 2, 3, 6}), std::sqrt(14.0 / 3), 1e-15);
  EXPECT_TRUE(std::isnan(mean({})));
  EXPECT_TRUE(std::isnan(sample_sd({})));
  EXPECT_TRUE(std::isnan(sample_sd({4})));
  EXPECT_EQ(sample_sd({2.5, 2.5, 2.5}), 0.0);
  // A small spread on a large offset stays exact (two passes).
  EXPECT_NEAR(sample_sd({1e9 + 1, 1e9 + 2, 1e9 + 3}), 1.0, 1e-12);
}

TEST(StatsTest, IntervalOfASmallSampleByHand) {
  // x = {-0.03, -0.02, -0.04} (three paired loss differences):
  //   mean = -0.09 / 3 = -0.03
  //   deviations 0, 0.01, -0.01 -> sum of squares 0.0002 -> / (n - 1) = 0.0001 -> sd = 0.01
  //   standard error = 0.01 / sqrt(3) = 0.0057735
  //   t_{0.975, 2} = 4.302653 -> half width = 4.302653 * 0.0057735 = 0.0248414
  //   interval = [-0.0548414, -0.0051586]: entirely below 0.
  const Interval ci = t_interval({-0.03, -0.02, -0.04});
  EXPECT_EQ(ci.n, 3);
  EXPECT_TRUE(ci.defined());
  EXPECT_NEAR(ci.mean, -0.03, 1e-15);
  EXPECT_NEAR(ci.sd, 0.01, 1e-15);
  EXPECT_NEAR(ci.half_width, 0.0248414, 1e-7);
  EXPECT_NEAR(ci.low, -0.0548414, 1e-7);
  EXPECT_NEAR(ci.high, -0.0051586, 1e-7);
  EXPECT_EQ(ci.level, 0.95);

  // 90%: t_{0.95, 2} = 2.919986 -> half width 2.919986 * 0.0057735 = 0.0168585.
  EXPECT_NEAR(t_interval({-0.03, -0.02, -0.04}, 0.90).half_width, 0.0168585, 1e-7);
  // From summary figures: mean 10, sd 2, n = 5 -> 2.776445 * 2 / sqrt(5) = 2.4833.
  EXPECT_NEAR(t_interval(10, 2, 5).half_width, 2.4833, 1e-4);
  EXPECT_THROW(t_interval({1, 2}, 1.0), std::invalid_argument);
}

TEST(StatsTest, IntervalEdgeCasesAreDocumentedValues) {
  const Interval none = t_interval({});
  EXPECT_EQ(none.n, 0);
  EXPECT_FALSE(none.defined());
  EXPECT_TRUE(std::isnan(none.mean));
  EXPECT_TRUE(std::isnan(none.low));

  const Interval one = t_interval({0.7});
  EXPECT_EQ(one.n, 1);
  EXPECT_FALSE(one.defined());
  EXPECT_EQ(one.mean, 0.7);
  EXPECT_TRUE(std::isnan(one.sd));
  EXPECT_TRUE(std::isnan(one.half_width));
  EXPECT_TRUE(std::isnan(one.high));

  const Interval flat = t_interval({0.2, 0.2, 0.2, 0.2});
  EXPECT_TRUE(flat.defined());
  EXPECT_EQ(flat.half_width, 0.0);
  EXPECT_DOUBLE_EQ(flat.low, 0.2);
  EXPECT_DOUBLE_EQ(flat.high, 0.2);
}

TEST(StatsTest, PairedDifferences) {
  const std::vector<double> d = paired_differences({3.0, 3.5, 2.0}, {2.5, 3.5, 2.25});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0], 0.5);
  EXPECT_EQ(d[1], 0.0);
  EXPECT_EQ(d[2], -0.25);
  EXPECT_THROW(paired_differences({1, 2}, {1}), std::invalid_argument);
}

TEST(StatsTest, TostByHand) {
  // x = {0.002, 0.004, 0.006}, margin 0.01, alpha 0.05:
  //   mean 0.004, sd 0.002, se = 0.002 / sqrt(3) = 0.00115470
  //   lower test: t = (0.004 + 0.01) / se = 12.124356, p = P(T_2 >= 12.124356)
  //     = 1/2 - 12.124356 / (2 sqrt(2 + 147)) = 1/2 - 12.124356 / 24.413111 = 0.0033670
  //   upper test: t = (0.004 - 0.01) / se = -5.196152, p = P(T_2 <= -5.196152)
  //     = 1/2 - 5.196152 / (2 sqrt(2 + 27)) = 1/2 - 5.196152 / 10.770330 = 0.0175494
  //   p = max = 0.0175494 < 0.05: equivalent.
  const TostResult r = tost({0.002, 0.004, 0.006}, 0.01);
  EXPECT_NEAR(r.p_lower, 0.0033670, 1e-7);
  EXPECT_NEAR(r.p_upper, 0.0175494, 1e-7);
  EXPECT_NEAR(r.p_value, 0.0175494, 1e-7);
  EXPECT_TRUE(r.equivalent);
  // The same data with a margin of 0.005: upper t = -0.001 / se = -0.866025,
  // p = 1/2 - 0.866025 / (2 sqrt(2.75)) = 1/2 - 0.261116 = 0.238884: not equivalent.
  const TostResult narrow = tost({0.002, 0.004, 0.006}, 0.005);
  EXPECT_NEAR(narrow.p_value, 0.238884, 1e-6);
  EXPECT_FALSE(narrow.equivalent);
  // TOST at alpha equals the (1 - 2 alpha) interval inside the margins: the 90% interval of
  // the first sample is 0.004 ± 2.919986 · 0.0011547 = [0.000628, 0.007372], inside ±0.01.
  const Interval ci90 = t_interval({0.002, 0.004, 0.006}, 0.90);
  EXPECT_GT(ci90.low, -0.01);
  EXPECT_LT(ci90.high, 0.01);
}

TEST(StatsTest, TostEdgeCases) {
  // Fewer than two values: nothing can be shown.
  for (const std::vector<double>& x : {std::vector<double>{}, std::vector<double>{0.0}}) {
    const TostResult r = tost(x, 0.01);
    EXPECT_EQ(r.p_value, 1.0);
    EXPECT_FALSE(r.equivalent);
  }
  // No spread: equivalent exactly when the mean lies strictly inside the margins.
  EXPECT_TRUE(tost({0.003, 0.003}, 0.01).equivalent);
  EXPECT_EQ(tost({0.003, 0.003}, 0.01).p_value, 0.0);
  EXPECT_FALSE(tost({0.02, 0.02}, 0.01).equivalent);
  EXPECT_FALSE(tost({-0.01, -0.01}, 0.01).equivalent);  // on the bound: not inside
  EXPECT_THROW(tost({1, 2}, 0), std::invalid_argument);
  EXPECT_THROW(tost({1, 2}, 0.1, 0.7), std::invalid_argument);
}

TEST(StatsTest, SeedsNeededByHand) {
  // mean 0.01, sd 0.02: the interval excludes 0 once t_{0.975, n-1} · 0.02 / sqrt(n) < 0.01,
  // i.e. t_{0.975, n-1} / sqrt(n) < 0.5. With table values:
  //   n = 16: 2.1314 / 4.0000 = 0.5329   no
  //   n = 17: 2.1199 / 4.1231 = 0.5142   no
  //   n = 18: 2.1098 / 4.2426 = 0.4973   yes -> 18 seeds.
  EXPECT_EQ(seeds_needed(0.01, 0.02), 18);
  EXPECT_EQ(seeds_needed(-0.01, 0.02), 18);  // the sign does not matter
  EXPECT_EQ(seeds_for_half_width(0.02, 0.01), 18);
  // mean 1, sd 1: n = 6: 2.5706 / 2.4495 = 1.049 no; n = 7: 2.4469 / 2.6458 = 0.925 yes.
  EXPECT_EQ(seeds_needed(1, 1), 7);
  // A clear difference needs the minimum of two seeds; no spread needs two as well.
  EXPECT_EQ(seeds_needed(1, 0.01), 2);
  EXPECT_EQ(seeds_needed(0.5, 0), 2);
  // No count makes an interval around a zero mean exclude 0; a cap bounds hopeless cases.
  EXPECT_EQ(seeds_needed(0, 0.1), std::nullopt);
  EXPECT_EQ(seeds_needed(1e-6, 1), std::nullopt);
  EXPECT_EQ(seeds_needed(0.01, std::nan("")), std::nullopt);
  // Consistent with the interval itself: at the returned n the half width is below |mean|,
  // one seed fewer it is not.
  const int n = *seeds_needed(0.013, 0.05);
  EXPECT_LT(t_interval(0.013, 0.05, n).half_width, 0.013);
  EXPECT_GE(t_interval(0.013, 0.05, n - 1).half_width, 0.013);
}

TEST(StatsTest, OlsSlope) {
  // y = 3 - 2x exactly.
  EXPECT_NEAR(ols_slope({0, 1, 2, 3}, {3, 1, -1, -3}), -2.0, 1e-15);
  // x = {0, 1, 2}, y = {0, 2, 1}: Sxy = (-1)(-1) + 0 + (1)(0) = 1, Sxx = 2 -> slope 0.5.
  EXPECT_NEAR(ols_slope({0, 1, 2}, {0, 2, 1}), 0.5, 1e-15);
  EXPECT_TRUE(std::isnan(ols_slope({1}, {2})));
  EXPECT_TRUE(std::isnan(ols_slope({1, 1}, {2, 3})));
  EXPECT_THROW(ols_slope({1, 2}, {1}), std::invalid_argument);
}

}  // namespace
}  // namespace moebench::stats
