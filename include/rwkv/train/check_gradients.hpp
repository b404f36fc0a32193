#pragma once
// Checks a backward against the loss itself, tensor by tensor: the directional derivative of the loss along a
// direction u of the tensor, by central finite differences (L(θ + εu) − L(θ − εu)) / 2ε, next to g·u from the
// gradient loss_and_gradients computes. The direction is the gradient's own: the derivative along it is ‖g‖
// exactly when g is right, and less when g points elsewhere or is too large (a wrong sign, a missed path or a
// transposed product: relative errors of order 1). Random directions can be added, but they carry only ‖g‖/√n of
// slope, within the finite difference's error for big tensors. The network computes in float32 (the loss is good
// to ~1e-5 relative), so single-entry differences would drown in rounding; ε moves the loss by 0.3% (at most 10%
// of the tensor's rms per entry), and Richardson extrapolation of two central differences removes their ε² error.
// A correct backward then shows errors of a few percent at most: compare with 0.1, not with 1e-6.
//
//   const auto r = rwkv::train::check_gradients(net, inputs, targets);
//   if (r.worst > 1e-2) std::cerr << r.tensor << ": " << r.analytic << " vs " << r.numeric;

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "rwkv/train/network.hpp"

namespace rwkv::train {

struct gradient_check_options {
  int directions = 1;    // per tensor: the gradient's own direction, then random ones (weaker: see above)
  double change = 3e-3;  // ε moves the loss by about this fraction: ε = change·|L| / ‖g‖
  std::uint64_t seed = 0;
  form segments = form::sequence;
};

struct gradient_check_result {
  double worst = 0;    // the largest relative error, |g·u − numeric| / max(|g·u|, |numeric|, 5% of ‖g‖)
  std::string tensor;  // where it is
  double analytic = 0, numeric = 0;
  std::size_t checked = 0;  // directional derivatives compared
};

// The loss is the network's: mean cross-entropy of targets after inputs, without L2Wrap (which changes the
// gradient but not the loss, so it is off during the check). The parameters' gradients are left as computed.
// Tensors whose gradient is exactly zero (unused ones) are skipped.
template <class Layer>
gradient_check_result check_gradients(network<Layer>& net, std::span<const std::int32_t> inputs,
                                      std::span<const std::int32_t> targets, const gradient_check_options& o = {}) {
  const bool l2wrap = net.l2wrap();
  net.use_l2wrap(false);
  net.parameters().zero_grad();
  const double loss = net.loss_and_gradients(inputs, targets, o.segments);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  gradient_check_result r;
  for (auto& p : net.parameters().all()) {
    const Eigen::Map<const Eigen::VectorXf> g(p.grad.data(), p.grad.size());
    const double gnorm = g.norm();
    if (gnorm == 0) continue;
    const Eigen::VectorXf saved = Eigen::Map<const Eigen::VectorXf>(p.value.data(), p.value.size());
    const double n = static_cast<double>(p.value.size());
    const double rms = std::sqrt(static_cast<double>(saved.squaredNorm()) / n);
    // At most 10% of the tensor's scale per entry (0.1 for a tensor of zeros).
    const auto eps =
        static_cast<float>(std::min(o.change * std::abs(loss) / gnorm, 0.1 * std::max(rms, 0.1) * std::sqrt(n)));
    Eigen::Map<Eigen::VectorXf> value(p.value.data(), p.value.size());
    for (int d = 0; d < o.directions; ++d) {
      Eigen::VectorXf u =
          d == 0 ? Eigen::VectorXf(g) : Eigen::VectorXf::NullaryExpr(g.size(), [&] { return normal(rng); });
      u.normalize();
      auto central = [&](float e) {
        value = saved + e * u;
        const double lp = net.loss(inputs, targets, o.segments);
        value = saved - e * u;
        const double lm = net.loss(inputs, targets, o.segments);
        value = saved;
        return (lp - lm) / (2.0 * static_cast<double>(e));
      };
      // Richardson: the ε² error term of the central difference cancels.
      const double numeric = (4 * central(eps / 2) - central(eps)) / 3;
      const double analytic = g.dot(u);
      const double err = std::abs(analytic - numeric) / std::max({std::abs(analytic), std::abs(numeric), 0.05 * gnorm});
      ++r.checked;
      if (err > r.worst) r = {err, p.name, analytic, numeric, r.checked};
    }
  }
  net.use_l2wrap(l2wrap);
  return r;
}

}  // namespace rwkv::train
