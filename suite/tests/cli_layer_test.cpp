// `moebench layer` end to end through the real binary (path MOEBENCH_EXE): IN files with small
// random weights, OUT compared with a hand-derived double-precision forward and backward written
// one token and one expert at a time, without torch (METHODS.md §1, dense §7); bad inputs must
// be refused.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "suite/safetensors.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Sizes {
  int64_t N = 7, H = 12, E = 3, I = 8, r = 2;
};

// Row-major weights as float32 (what the file holds); the reference widens them to double.
struct Weights {
  Sizes s;
  std::vector<float> x, gy, A, B, U, D, gamma, bias;
};

// Uniform floats from mt19937's exactly specified output (std:: distributions differ between
// standard libraries; this does not).
class Rng {
 public:
  explicit Rng(uint32_t seed) : g_(seed) {}
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(g_() >> 8) * (1.0f / 16777216.0f);
  }
  std::vector<float> uniform(int64_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }

 private:
  std::mt19937 g_;
};

Weights random_weights(uint32_t seed, Sizes s = {}) {
  Rng rng(seed);
  Weights w;
  w.s = s;
  w.x = rng.uniform(s.N * s.H, -1, 1);
  w.gy = rng.uniform(s.N * s.H, -1, 1);
  w.A = rng.uniform(s.E * s.r * s.H, -0.5f, 0.5f);
  w.B = rng.uniform(s.E * s.I * s.r, -1, 1);
  w.U = rng.uniform(s.E * s.I * s.H, -0.5f, 0.5f);
  w.D = rng.uniform(s.E * s.H * s.I, -0.5f, 0.5f);
  w.gamma = rng.uniform(s.E, 1.2f, 1.8f);  // around 1.5: scores straddle theta
  w.bias = rng.uniform(s.E, -0.4f, 0.4f);
  return w;
}

// Everything `moebench layer` writes, computed in double with hand-derived gradients.
struct Reference {
  std::vector<double> y, scores, grad_x, grad_A, grad_B, grad_U, grad_D, grad_gamma, grad_bias;
  int64_t active = 0;
  double min_margin = kInf;  // min |s - theta|: float32 must not flip any decision
  bool some_token_idle = false, some_token_busy = false;  // 0 experts / >= 2 experts
  // Scores within 0.1 below and above theta: another theta (or a wrong default) changes them.
  bool near_below = false, near_above = false;
};

Reference reference(const Weights& w, double theta, const std::string& norm) {
  const auto [N, H, E, I, r] = w.s;
  auto d = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  const auto x = d(w.x), gy = d(w.gy), A = d(w.A), B = d(w.B), U = d(w.U), D = d(w.D),
             gamma = d(w.gamma), bias = d(w.bias);
  Reference ref;
  ref.y.assign(N * H, 0);
  ref.scores.assign(N * E, -kInf);
  ref.grad_x.assign(N * H, 0);
  ref.grad_A.assign(A.size(), 0);
  ref.grad_B.assign(B.size(), 0);
  ref.grad_U.assign(U.size(), 0);
  ref.grad_D.assign(D.size(), 0);
  ref.grad_gamma.assign(E, 0);
  ref.grad_bias.assign(E, 0);
  for (int64_t n = 0; n < N; ++n) {
    const double* xn = &x[n * H];
    const double* gyn = &gy[n * H];
    int active_here = 0;
    for (int64_t e = 0; e < E; ++e) {
      // z = A_e x, its norm, the score.
      std::vector<double> z(r, 0.0);
      for (int64_t k = 0; k < r; ++k) {
        for (int64_t h = 0; h < H; ++h) z[k] += A[(e * r + k) * H + h] * xn[h];
      }
      double nz = 0;
      int64_t kmax = 0;
      for (int64_t k = 0; k < r; ++k) {
        if (norm == "l2") nz += z[k] * z[k];
        if (norm == "l1") nz += std::abs(z[k]);
        if (norm == "linf" && std::abs(z[k]) > std::abs(z[kmax])) kmax = k;
      }
      if (norm == "l2") nz = std::sqrt(nz);
      if (norm == "linf") nz = std::abs(z[kmax]);
      const double s = gamma[e] * nz - bias[e];
      ref.min_margin = std::min(ref.min_margin, std::abs(s - theta));
      ref.near_below |= s < theta && s > theta - 0.1;
      ref.near_above |= s >= theta && s < theta + 0.1;
      if (s < theta) continue;  // inactive: not computed, no gradient anywhere
      ++ref.active;
      ++active_here;
      ref.scores[n * E + e] = s;

      // Forward of the expert: g = B z, u = U x, h = SiLU(g) u, o = D h; y += s o.
      std::vector<double> g(I, 0.0), u(I, 0.0), sig(I), silu(I), hid(I), o(H, 0.0);
      for (int64_t i = 0; i < I; ++i) {
        for (int64_t k = 0; k < r; ++k) g[i] += B[(e * I + i) * r + k] * z[k];
        for (int64_t h = 0; h < H; ++h) u[i] += U[(e * I + i) * H + h] * xn[h];
        sig[i] = 1.0 / (1.0 + std::exp(-g[i]));
        silu[i] = g[i] * sig[i];
        hid[i] = silu[i] * u[i];
      }
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < I; ++i) o[h] += D[(e * H + h) * I + i] * hid[i];
        ref.y[n * H + h] += s * o[h];
      }

      // Backward of sum(y * grad_y) through this pair.
      double gs = 0;  // d/ds
      for (int64_t h = 0; h < H; ++h) gs += gyn[h] * o[h];
      std::vector<double> ghid(I, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const double go = s * gyn[h];
        for (int64_t i = 0; i < I; ++i) {
          ref.grad_D[(e * H + h) * I + i] += go * hid[i];
          ghid[i] += D[(e * H + h) * I + i] * go;
        }
      }
      std::vector<double> gz(r, 0.0);
      for (int64_t i = 0; i < I; ++i) {
        const double gu = ghid[i] * silu[i];
        const double gg = ghid[i] * u[i] * sig[i] * (1.0 + g[i] * (1.0 - sig[i]));  // SiLU'
        for (int64_t h = 0; h < H; ++h) {
          ref.grad_U[(e * I + i) * H + h] += gu * xn[h];
          ref.grad_x[n * H + h] += U[(e * I + i) * H + h] * gu;
        }
        for (int64_t k = 0; k < r; ++k) {
          ref.grad_B[(e * I + i) * r + k] += gg * z[k];
          gz[k] += B[(e * I + i) * r + k] * gg;
        }
      }
      ref.grad_gamma[e] += gs * nz;
      ref.grad_bias[e] -= gs;
      for (int64_t k = 0; k < r; ++k) {
        double dnorm = 0;  // d||z|| / dz_k
        if (norm == "l2") dnorm = z[k] / nz;
        if (norm == "l1") dnorm = (z[k] > 0) - (z[k] < 0);
        if (norm == "linf") dnorm = k == kmax ? ((z[k] > 0) - (z[k] < 0)) : 0.0;
        gz[k] += gs * gamma[e] * dnorm;
      }
      for (int64_t k = 0; k < r; ++k) {
        for (int64_t h = 0; h < H; ++h) {
          ref.grad_A[(e * r + k) * H + h] += gz[k] * xn[h];
          ref.grad_x[n * H + h] += A[(e * r + k) * H + h] * gz[k];
        }
      }
    }
    ref.some_token_idle |= active_here == 0;
    ref.some_token_busy |= active_here >= 2;
  }
  return ref;
}

// First seed from `start` whose weights give a useful case: 20-80% of the pairs active, a token
// with no expert and one with several, scores within 0.1 on both sides of theta but none
// within 1e-3 of it.
Weights useful_weights(uint32_t start, double theta, const std::string& norm) {
  for (uint32_t seed = start; seed < start + 10000; ++seed) {
    Weights w = random_weights(seed);
    const Reference ref = reference(w, theta, norm);
    const double frac = double(ref.active) / double(w.s.N * w.s.E);
    if (frac >= 0.2 && frac <= 0.8 && ref.some_token_idle && ref.some_token_busy &&
        ref.near_below && ref.near_above && ref.min_margin > 1e-3) {
      return w;
    }
  }
  throw std::runtime_error("no useful seed found");
}

SafeTensors to_file(const Weights& w) {
  const auto [N, H, E, I, r] = w.s;
  SafeTensors st;
  st.tensors["x"] = make_f32({N, H}, w.x);
  st.tensors["grad_y"] = make_f32({N, H}, w.gy);
  st.tensors["A"] = make_f32({E, r, H}, w.A);
  st.tensors["B"] = make_f32({E, I, r}, w.B);
  st.tensors["U"] = make_f32({E, I, H}, w.U);
  st.tensors["D"] = make_f32({E, H, I}, w.D);
  st.tensors["gamma"] = make_f32({E}, w.gamma);
  st.tensors["bias"] = make_f32({E}, w.bias);
  return st;
}

class LayerCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "moebench_cli_layer_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `moebench <args>`; returns the exit status, stderr in err_.
  int run(const std::string& args) {
    const std::string cmd = std::string("'") + MOEBENCH_EXE + "' " + args + " >'" +
                            (dir_ / "stdout").string() + "' 2>'" + (dir_ / "stderr").string() + "'";
    const int status = std::system(cmd.c_str());
    std::ifstream f(dir_ / "stderr");
    std::stringstream ss;
    ss << f.rdbuf();
    err_ = ss.str();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  int run_layer(const SafeTensors& in, const std::string& extra = "") {
    write_safetensors(in_path(), in);
    return run("layer --method routing_free --in '" + in_path() + "' --out '" + out_path() + "' " +
               extra);
  }

  std::string in_path() const { return (dir_ / "in.safetensors").string(); }
  std::string out_path() const { return (dir_ / "out.safetensors").string(); }

  void expect_refused(const SafeTensors& in, const std::vector<std::string>& phrases,
                      const std::string& extra = "") {
    EXPECT_NE(run_layer(in, extra), 0);
    for (const auto& p : phrases) EXPECT_NE(err_.find(p), std::string::npos) << p << "\n" << err_;
    EXPECT_FALSE(fs::exists(out_path()));
  }

  fs::path dir_;
  std::string err_;
};

void expect_close(const SafeTensors& out, const std::string& name,
                  const std::vector<int64_t>& shape, const std::vector<double>& want) {
  ASSERT_TRUE(out.tensors.count(name)) << "OUT lacks " << name;
  const StTensor& t = out.tensors.at(name);
  EXPECT_EQ(t.dtype, "F32") << name;
  ASSERT_EQ(t.shape, shape) << name;
  const auto got = to_doubles(t, name);
  double scale = 1.0;
  for (double v : want) {
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  }
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << name << "[" << i << "]";
      continue;
    }
    // float32 sums of at most a few dozen terms: well inside 1e-4 of the tensor's scale.
    if (!(std::abs(got[i] - want[i]) <= 1e-4 * scale) && bad++ < 5) {
      ADD_FAILURE() << name << "[" << i << "] = " << got[i] << ", reference " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << want.size() << " values differ";
}

void expect_matches(const SafeTensors& out, const Weights& w, const Reference& ref) {
  const auto [N, H, E, I, r] = w.s;
  EXPECT_EQ(out.tensors.size(), 9u);
  expect_close(out, "y", {N, H}, ref.y);
  expect_close(out, "scores", {N, E}, ref.scores);
  expect_close(out, "grad_x", {N, H}, ref.grad_x);
  expect_close(out, "grad_A", {E, r, H}, ref.grad_A);
  expect_close(out, "grad_B", {E, I, r}, ref.grad_B);
  expect_close(out, "grad_U", {E, I, H}, ref.grad_U);
  expect_close(out, "grad_D", {E, H, I}, ref.grad_D);
  expect_close(out, "grad_gamma", {E}, ref.grad_gamma);
  expect_close(out, "grad_bias", {E}, ref.grad_bias);
  EXPECT_EQ(out.metadata.at("active_pairs"), std::to_string(ref.active));
}

TEST_F(LayerCommand, DefaultsAreThetaOneL2AndMatchTheSlowLoop) {
  const Weights w = useful_weights(1, 1.0, "l2");
  ASSERT_EQ(run_layer(to_file(w)), 0) << err_;
  expect_matches(read_safetensors(out_path()), w, reference(w, 1.0, "l2"));
}

struct SetCase {
  double theta;
  std::string norm, sets;
};

void PrintTo(const SetCase& c, std::ostream* os) { *os << "'" << c.sets << "'"; }

class LayerCommandSet : public LayerCommand, public ::testing::WithParamInterface<SetCase> {};

TEST_P(LayerCommandSet, MatchesTheSlowLoop) {
  const auto c = GetParam();
  const Weights w = useful_weights(100, c.theta, c.norm);
  ASSERT_EQ(run_layer(to_file(w), c.sets), 0) << err_;
  expect_matches(read_safetensors(out_path()), w, reference(w, c.theta, c.norm));
}

INSTANTIATE_TEST_SUITE_P(
    Options, LayerCommandSet,
    ::testing::Values(SetCase{0.7, "l2", "--set moe.theta=0.7"},
                      SetCase{1.5, "l1", "--set moe.norm=l1 --set moe.theta=1.5"},
                      SetCase{0.8, "linf", "--set moe.norm=linf --set moe.theta=0.8"}));

TEST_F(LayerCommand, NoActivePairGivesZerosAndMinusInfinity) {
  Weights w = random_weights(7);
  for (auto& b : w.bias) b = 100.0f;
  const Reference ref = reference(w, 1.0, "l2");
  ASSERT_EQ(ref.active, 0);
  ASSERT_EQ(run_layer(to_file(w)), 0) << err_;
  expect_matches(read_safetensors(out_path()), w, ref);
}

TEST_F(LayerCommand, MissingTensorIsNamed) {
  auto in = to_file(random_weights(1));
  in.tensors.erase("gamma");
  expect_refused(in, {"no tensor 'gamma'", "in.safetensors"});
}

TEST_F(LayerCommand, WrongShapeNamesTensorAndShapes) {
  const Weights w = random_weights(1);
  auto in = to_file(w);
  in.tensors["U"] = make_f32({3, 8, 11}, std::vector<float>(3 * 8 * 11, 0.1f));
  expect_refused(
      in, {"tensor 'U' has shape [3, 8, 11], expected [E, I, H] = [3, 8, 12]", "H = 12 from 'x'"});
  in = to_file(w);
  in.tensors["gamma"] = make_f32({1, 3}, {1, 1, 1});
  expect_refused(in, {"tensor 'gamma' has shape [1, 3], expected [E] = [3]"});
  in = to_file(w);
  in.tensors["grad_y"] = make_f32({6, 12}, std::vector<float>(72, 0.f));
  expect_refused(in, {"tensor 'grad_y' has shape [6, 12], expected [N, H] = [7, 12]"});
}

TEST_F(LayerCommand, NonFloat32IsRefused) {
  const Weights w = random_weights(1);
  auto in = to_file(w);
  in.tensors["x"] = make_f64({7, 12}, std::vector<double>(w.x.begin(), w.x.end()));
  expect_refused(in, {"tensor 'x' has dtype F64", "F32"});
}

TEST_F(LayerCommand, BadSetKeysAreRefused) {
  const auto in = to_file(random_weights(1));
  expect_refused(in, {"moe.frobnitz", "unknown key"}, "--set moe.frobnitz=1");
  // The same parsing and messages as `moebench train --set`.
  expect_refused(in, {"moe.norm", "\"l3\" is not one of l2, l1, linf"}, "--set moe.norm=l3");
  expect_refused(in, {"moe.theta", "'abc' has the wrong type"}, "--set moe.theta=abc");
  expect_refused(in, {"moe.top_k = 5", "moe.experts = 3"}, "--set moe.top_k=5");
  expect_refused(in, {"moe.experts", "tensor shapes"}, "--set moe.experts=4");
}

TEST_F(LayerCommand, CorruptInputNamesTheFile) {
  write_safetensors(in_path(), to_file(random_weights(1)));
  fs::resize_file(in_path(), fs::file_size(in_path()) - 10);
  EXPECT_NE(run("layer --method routing_free --in '" + in_path() + "' --out '" + out_path() + "'"),
            0);
  EXPECT_NE(err_.find("in.safetensors"), std::string::npos) << err_;
  EXPECT_NE(err_.find("out of range"), std::string::npos) << err_;
}

// --method dense: one SwiGLU FFN, y = D (SiLU(G x) * U x), with G [I, H], U [I, H], D [H, I].
struct DenseCase {
  int64_t N = 5, H = 12, I = 10;
  std::vector<float> x, gy, G, U, D;
};

DenseCase dense_case(uint32_t seed) {
  DenseCase c;
  Rng rng(seed);
  c.x = rng.uniform(c.N * c.H, -1, 1);
  c.gy = rng.uniform(c.N * c.H, -1, 1);
  c.G = rng.uniform(c.I * c.H, -0.6f, 0.6f);  // |G x| up to ~2: SiLU well off its linear part
  c.U = rng.uniform(c.I * c.H, -0.5f, 0.5f);
  c.D = rng.uniform(c.H * c.I, -0.5f, 0.5f);
  return c;
}

struct DenseReference {
  std::vector<double> y, grad_x, grad_G, grad_U, grad_D;
};

// Forward and the backward of sum(y * grad_y), one token at a time in double:
// g = G x, u = U x, h = SiLU(g) u, y = D h; dh = D^T dy, dD = dy h^T, du = dh SiLU(g),
// dg = dh u SiLU'(g), dU = du x^T, dG = dg x^T, dx = G^T dg + U^T du.
DenseReference dense_reference(const DenseCase& c) {
  const int64_t N = c.N, H = c.H, I = c.I;
  DenseReference r;
  r.y.assign(N * H, 0);
  r.grad_x.assign(N * H, 0);
  r.grad_G.assign(I * H, 0);
  r.grad_U.assign(I * H, 0);
  r.grad_D.assign(H * I, 0);
  for (int64_t n = 0; n < N; ++n) {
    const float* x = &c.x[n * H];
    const float* gy = &c.gy[n * H];
    std::vector<double> g(I, 0), u(I, 0), sig(I), h(I), dh(I, 0);
    for (int64_t i = 0; i < I; ++i) {
      for (int64_t k = 0; k < H; ++k) {
        g[i] += double(c.G[i * H + k]) * x[k];
        u[i] += double(c.U[i * H + k]) * x[k];
      }
      sig[i] = 1.0 / (1.0 + std::exp(-g[i]));
      h[i] = g[i] * sig[i] * u[i];
    }
    for (int64_t k = 0; k < H; ++k) {
      for (int64_t i = 0; i < I; ++i) {
        r.y[n * H + k] += double(c.D[k * I + i]) * h[i];
        r.grad_D[k * I + i] += double(gy[k]) * h[i];
        dh[i] += double(c.D[k * I + i]) * gy[k];
      }
    }
    for (int64_t i = 0; i < I; ++i) {
      const double du = dh[i] * g[i] * sig[i];
      const double dg = dh[i] * u[i] * sig[i] * (1.0 + g[i] * (1.0 - sig[i]));
      for (int64_t k = 0; k < H; ++k) {
        r.grad_U[i * H + k] += du * x[k];
        r.grad_G[i * H + k] += dg * x[k];
        r.grad_x[n * H + k] += double(c.G[i * H + k]) * dg + double(c.U[i * H + k]) * du;
      }
    }
  }
  return r;
}

SafeTensors dense_file(const DenseCase& c) {
  SafeTensors st;
  st.tensors["x"] = make_f32({c.N, c.H}, c.x);
  st.tensors["grad_y"] = make_f32({c.N, c.H}, c.gy);
  st.tensors["G"] = make_f32({c.I, c.H}, c.G);
  st.tensors["U"] = make_f32({c.I, c.H}, c.U);
  st.tensors["D"] = make_f32({c.H, c.I}, c.D);
  return st;
}

TEST_F(LayerCommand, DenseMatchesTheSlowLoop) {
  const DenseCase c = dense_case(11);
  write_safetensors(in_path(), dense_file(c));
  ASSERT_EQ(run("layer --method dense --in '" + in_path() + "' --out '" + out_path() + "'"), 0)
      << err_;
  const SafeTensors out = read_safetensors(out_path());
  const DenseReference ref = dense_reference(c);
  EXPECT_EQ(out.tensors.size(), 5u);  // y, grad_x, grad_G, grad_U, grad_D: no scores
  EXPECT_EQ(out.tensors.count("scores"), 0u);
  expect_close(out, "y", {c.N, c.H}, ref.y);
  expect_close(out, "grad_x", {c.N, c.H}, ref.grad_x);
  expect_close(out, "grad_G", {c.I, c.H}, ref.grad_G);
  expect_close(out, "grad_U", {c.I, c.H}, ref.grad_U);
  expect_close(out, "grad_D", {c.H, c.I}, ref.grad_D);
  EXPECT_EQ(out.metadata.at("method"), "dense");
  EXPECT_EQ(out.metadata.at("sizes"), "H=12 I=10 N=5");
}

TEST_F(LayerCommand, DenseRefusesMissingAndMisshapenWeights) {
  const DenseCase c = dense_case(12);
  auto in = dense_file(c);
  in.tensors.erase("U");
  write_safetensors(in_path(), in);
  EXPECT_NE(run("layer --method dense --in '" + in_path() + "' --out '" + out_path() + "'"), 0);
  EXPECT_NE(err_.find("no tensor 'U' (this method needs: x, grad_y, G, U, D)"), std::string::npos)
      << err_;
  in = dense_file(c);
  in.tensors["D"] = make_f32({c.H, 9}, std::vector<float>(c.H * 9, 0.1f));
  write_safetensors(in_path(), in);
  EXPECT_NE(run("layer --method dense --in '" + in_path() + "' --out '" + out_path() + "'"), 0);
  EXPECT_NE(err_.find("tensor 'D' has shape [12, 9], expected [H, I] = [12, 10]"),
            std::string::npos)
      << err_;
  EXPECT_FALSE(fs::exists(out_path()));
}

TEST_F(LayerCommand, HelpListsEveryTensorName) {
  ASSERT_EQ(run("layer --help"), 0);
  std::ifstream f(dir_ / "stdout");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string help = ss.str();
  for (const char* name :
       {"x [N, H]", "grad_y [N, H]", "A [E, r, H]", "B [E, I, r]", "U [E, I, H]", "D [E, H, I]",
        "gamma [E]", "bias [E]", "scores [N, E]", "grad_<name>", "routing_free", "moe.theta",
        "moe.norm", "balancing loss is not included", "--method dense", "G [I, H]", "D [H, I]",
        "dense_width"}) {
    EXPECT_NE(help.find(name), std::string::npos) << name << "\n" << help;
  }
}

}  // namespace
}  // namespace moebench
