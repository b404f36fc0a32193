// Must not compile: a channel mixer whose forward takes another state type than its state_type.
#include <rwkv/v7.hpp>

struct WrongState {
  using state_type = rwkv::v7::ChannelMixState;
  state_type make_state() const { return {}; }
  void forward(const rwkv::row_matrix&, rwkv::v7::TimeMixState&, rwkv::context&, rwkv::row_matrix&) const {}
};

int main() {
  rwkv::Block<rwkv::v7::TimeMix<>, WrongState> block;
  (void)block;
}
