#include "search.h"

// A fused multiply-add rounds once instead of twice: scores would then
// depend on the CPU (arm64 contracts by default).
#pragma GCC optimize("fp-contract=off")
#include <math.h>

// Sixteen independent lanes: the compiler vectorises them without
// reassociating any sum (no -ffast-math), so every dot product is an exact
// float32 computation in a fixed order, on every machine.
#define LANES 16

__attribute__((always_inline)) static inline float dot(const float *a, const float *b, int64_t d) {
	float acc[LANES] = {0};
	int64_t j = 0;
	for (; j + LANES <= d; j += LANES)
		for (int k = 0; k < LANES; k++)
			acc[k] += a[j + k] * b[j + k];
	float s = 0;
	for (int k = 0; k < LANES; k++)
		s += acc[k];
	for (; j < d; j++)
		s += a[j] * b[j];
	return s;
}

#define SEARCH_BODY(DOT)                                                        \
	int32_t p1 = -1, p2 = -1;                                                   \
	float s1 = -INFINITY, s2 = -INFINITY;                                       \
	for (int64_t i = 0; i < n; i++) {                                           \
		float s = DOT(q, m + i * d, d);                                         \
		int32_t p = owner[i];                                                   \
		if (p == p1) {                                                          \
			if (s > s1) s1 = s;                                                 \
		} else if (s > s1) {                                                    \
			if (p1 >= 0) { p2 = p1; s2 = s1; }                                  \
			p1 = p; s1 = s;                                                     \
		} else if (p == p2) {                                                   \
			if (s > s2) s2 = s;                                                 \
		} else if (s > s2) {                                                    \
			p2 = p; s2 = s;                                                     \
		}                                                                       \
	}                                                                           \
	facegate_match r = {p1, p2, s1, s2};                                        \
	return r;

static facegate_match search_generic(const float *q, const float *m, const int32_t *owner, int64_t n, int64_t d) {
	SEARCH_BODY(dot)
}

#if defined(__x86_64__)
// The same search compiled for AVX2, chosen at run time where the CPU has
// it; dot is inlined into it and vectorised for AVX2. No FMA: a fused
// multiply-add rounds once instead of twice, and the scores must not depend
// on the door's CPU.
__attribute__((target("avx2"))) static facegate_match search_avx2(const float *q, const float *m, const int32_t *owner, int64_t n, int64_t d) {
	SEARCH_BODY(dot)
}
#endif

facegate_match facegate_search(const float *q, const float *m, const int32_t *owner, int64_t n, int64_t d) {
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2"))
		return search_avx2(q, m, owner, n, d);
#endif
	return search_generic(q, m, owner, n, d);
}
