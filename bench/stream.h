/*
 * A STREAM-like read: the sum of every float in a buffer, split over OpenMP threads, with the
 * widest vector unit the CPU offers and several independent accumulators so that the loop is
 * limited by memory, not by addition latency. Used as the bandwidth limit that flat search is
 * measured against.
 */
#ifndef OMEN_BENCH_STREAM_H
#define OMEN_BENCH_STREAM_H

#include <stddef.h>

/* The sum of p[0..n) read by `threads` threads (the value only keeps the reads alive). */
double stream_sum(const float *p, size_t n, int threads);

#endif
