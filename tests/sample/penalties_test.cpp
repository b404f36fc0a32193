// Presence / frequency penalties with decay and bans against hand-computed values (spec/sampling.md §2 steps 2
// and 4). Parameters are powers of two so that every expected value is exact.
#define BOOST_TEST_MODULE penalties
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <random>
#include <vector>

#include <rwkv/sample/penalties.hpp>
#include <rwkv/sample/sampler.hpp>

namespace {

const rwkv::penalty_params halves{.presence = 0.5f, .frequency = 0.25f, .decay = 0.5f};

std::vector<float> penalised(const rwkv::penalties& p, std::size_t V = 6) {
  std::vector<float> logits(V, 0.f);
  p.apply(logits);
  return logits;
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_are_the_reference_pipeline_args) {
  const rwkv::penalty_params d;
  BOOST_CHECK_EQUAL(d.presence, 0.2f);
  BOOST_CHECK_EQUAL(d.frequency, 0.2f);
  BOOST_CHECK_EQUAL(d.decay, 0.996f);
  BOOST_CHECK(d.bans.empty());
  // Nothing seen, nothing banned: the logits are untouched.
  const rwkv::penalties p;
  std::vector<float> logits{1.f, -2.f, 3.f};
  p.apply(logits);
  BOOST_CHECK(logits == (std::vector<float>{1.f, -2.f, 3.f}));
}

BOOST_AUTO_TEST_CASE(presence_plus_decayed_frequency) {
  rwkv::penalties p(halves);
  p.update(2, "a");  // occ {2: 1}
  auto l = penalised(p);
  BOOST_CHECK_EQUAL(l[2], -0.75f);  // 0.5 + 1 * 0.25
  BOOST_CHECK_EQUAL(l[0], 0.f);
  BOOST_CHECK_EQUAL(l[3], 0.f);

  p.update(3, "b");  // decay: {2: 0.5}, then {3: 1}
  l = penalised(p);
  BOOST_CHECK_EQUAL(l[2], -0.625f);  // 0.5 + 0.5 * 0.25
  BOOST_CHECK_EQUAL(l[3], -0.75f);

  p.update(2, "a");  // decay first: {2: 0.25, 3: 0.5}, then 2 -> 1.25 (increment-then-decay would give 0.75)
  BOOST_CHECK_EQUAL(p.occurrences().at(2), 1.25);
  BOOST_CHECK_EQUAL(p.occurrences().at(3), 0.5);
  l = penalised(p);
  BOOST_CHECK_EQUAL(l[2], -0.8125f);  // 0.5 + 1.25 * 0.25
  BOOST_CHECK_EQUAL(l[3], -0.625f);   // 0.5 + 0.5 * 0.25

  // Penalties subtract from whatever the logits are.
  std::vector<float> logits{0.f, 0.f, 2.f, 1.f, 0.f, 0.f};
  p.apply(logits);
  BOOST_CHECK_EQUAL(logits[2], 1.1875f);
  BOOST_CHECK_EQUAL(logits[3], 0.375f);
}

BOOST_AUTO_TEST_CASE(presence_applies_even_after_the_count_decayed_away) {
  rwkv::penalties p(halves);
  p.update(1, "x");
  for (int i = 0; i < 60; ++i) p.update(4, "y");
  BOOST_CHECK_EQUAL(p.occurrences().at(1), std::ldexp(1.0, -60));
  const auto l = penalised(p);
  BOOST_CHECK_EQUAL(l[1], -0.5f);  // 0.5 + 2^-60 * 0.25 rounds to 0.5 in float: the full presence penalty stays
  BOOST_CHECK_LT(l[1], 0.f);
}

BOOST_AUTO_TEST_CASE(spaces_tabs_and_digits_get_presence_but_no_frequency) {
  rwkv::penalties p(halves);
  p.update(5, " ");
  BOOST_REQUIRE_EQUAL(p.occurrences().count(5), 1u);  // an entry exists even with weight 0
  BOOST_CHECK_EQUAL(p.occurrences().at(5), 0.0);
  p.update(5, " ");
  p.update(5, " ");
  BOOST_CHECK_EQUAL(p.occurrences().at(5), 0.0);
  auto l = penalised(p);
  BOOST_CHECK_EQUAL(l[5], -0.5f);  // presence only

  p.update(0, "123");  // a digit run: weight 0
  p.update(3, "321");  // not a substring of " \t0123456789": weight 1
  l = penalised(p);
  BOOST_CHECK_EQUAL(l[0], -0.5f);
  BOOST_CHECK_EQUAL(l[3], -0.75f);
  BOOST_CHECK_EQUAL(l[5], -0.5f);
}

BOOST_AUTO_TEST_CASE(weight_is_a_literal_substring_test) {
  for (const char* zero : {" ", "\t", "7", "123", "89", " \t", "0123456789", " \t0123456789", ""})
    BOOST_CHECK_MESSAGE(rwkv::penalties::weight(zero) == 0.0, "'" << zero << "'");
  for (const char* one : {"321", " 1", "\t ", "a", " a", "12 ", "\n", "\xef\xbf\xbd", "\x80", "  "})
    BOOST_CHECK_MESSAGE(rwkv::penalties::weight(one) == 1.0, "'" << one << "'");
}

BOOST_AUTO_TEST_CASE(bans_come_first_and_stay_minus_infinity) {
  auto params = halves;
  params.bans = {1, 4};
  rwkv::penalties p(params);
  p.update(1, "a");  // a banned token that is also penalised
  std::vector<float> logits{0.f, 5.f, 1.f, 0.f, 9.f, 0.f};
  p.apply(logits);
  BOOST_CHECK(std::isinf(logits[1]) && logits[1] < 0);  // -inf - penalty = -inf, not NaN
  BOOST_CHECK(std::isinf(logits[4]) && logits[4] < 0);
  BOOST_CHECK_EQUAL(logits[2], 1.f);
  // The banned favourites cannot be drawn; greedy picks the best of the rest.
  BOOST_CHECK_EQUAL(rwkv::argmax(logits), 2);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20; ++i) {
    const auto t = rwkv::sample(logits, {1.0f, 1.0f, 0}, rng);
    BOOST_CHECK(t != 1 && t != 4);
  }
}

BOOST_AUTO_TEST_CASE(reset_and_refusals) {
  rwkv::penalties p(halves);
  p.update(2, "a");
  p.reset();
  BOOST_CHECK(p.occurrences().empty());
  BOOST_CHECK_EQUAL(penalised(p)[2], 0.f);

  BOOST_CHECK_THROW(rwkv::penalties(rwkv::penalty_params{.bans = {-1}}), rwkv::error);
  BOOST_CHECK_THROW(rwkv::penalties(rwkv::penalty_params{.presence = NAN}), rwkv::error);
  BOOST_CHECK_THROW(p.update(-3, "a"), rwkv::error);
  rwkv::penalties banned(rwkv::penalty_params{.bans = {6}});
  BOOST_CHECK_THROW(penalised(banned), rwkv::error);  // id 6 is outside 6 logits
  p.update(7, "a");
  BOOST_CHECK_THROW(penalised(p), rwkv::error);
}
