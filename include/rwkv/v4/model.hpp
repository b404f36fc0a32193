#pragma once
// RWKV-4 as a whole model: the generic LanguageModel around v4 blocks (spec/v4.md).

#include <string>
#include <utility>
#include <vector>

#include "rwkv/core/backend.hpp"
#include "rwkv/core/precision.hpp"
#include "rwkv/model/block.hpp"
#include "rwkv/model/language_model.hpp"
#include "rwkv/model/state.hpp"
#include "rwkv/v4/channel_mix.hpp"
#include "rwkv/v4/config.hpp"
#include "rwkv/v4/time_mix.hpp"

namespace rwkv::v4 {

template <Precision P = f32, Backend B = cpu<>>
using Block = rwkv::Block<TimeMix<P, B>, ChannelMix<P, B>>;

using LayerState = BlockState<TimeMixState, ChannelMixState>;
using State = rwkv::State<LayerState>;

template <Precision P, Backend B>
struct model_traits {
  using config_type = Config;
  using block_type = Block<P, B>;
  using precision_type = P;
  using backend_type = B;
  static constexpr const char* version = "4";

  // A later generation's checkpoint would otherwise fail on the first missing v4 tensor; name the reason instead.
  // Version markers of spec/README.md §4, decided after scanning every key (7 before 6 before 5).
  static void check(const Config&, const io::weight_reader& r) {
    const std::pair<const char*, std::vector<const char*>> markers[] = {
        {"RWKV-7", {"att.r_k", "att.k_k", "att.x_r", "att.w0"}}, {"RWKV-6", {"time_maa"}}, {"RWKV-5", {"ln_x"}}};
    const auto names = r.names();
    for (const auto& [later, parts] : markers)
      for (const auto& name : names)
        for (const char* part : parts)
          if (name.find(part) != std::string::npos)
            r.fail(std::string("this is an ") + later + " checkpoint, not RWKV-4", name);
  }
};

// P and B are checked with a one-sentence error (rwkv::checked_precision, rwkv::checked_backend).
template <class P = f32, class B = cpu<>>
using Model = LanguageModel<model_traits<checked_precision<P>, checked_backend<B>>>;

}  // namespace rwkv::v4
