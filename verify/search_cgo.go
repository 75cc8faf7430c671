package verify

// #cgo CFLAGS: -O3
// #include "search.h"
import "C"

import "unsafe"

// searchRows runs the C kernel over the gallery's rows. The slices are Go
// memory without Go pointers in them, which cgo lets C read for the length
// of the call; the result comes back by value so nothing escapes.
func searchRows(q, vecs []float32, owner []int32, dim int) (best int, bs float32, second int, ss float32) {
	r := C.facegate_search((*C.float)(unsafe.Pointer(&q[0])), (*C.float)(unsafe.Pointer(&vecs[0])),
		(*C.int32_t)(unsafe.Pointer(&owner[0])), C.int64_t(len(owner)), C.int64_t(dim))
	return int(r.best), float32(r.best_score), int(r.second), float32(r.second_score)
}
