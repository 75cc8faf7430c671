// Exact 1:N search kernel: the best-of score of the top two people.
#include <stdint.h>

typedef struct {
	int32_t best, second; // person indices, -1 when none
	float best_score, second_score;
} facegate_match;

facegate_match facegate_search(const float *q, const float *m, const int32_t *owner, int64_t n, int64_t d);
