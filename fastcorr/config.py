"""Tunables of the compiled kernels, in one place (tests may patch them)."""

#: Output channels one CPU task computes together in a dense or grouped layer: each input row
#: read into cache serves this many output channels.
CPU_OUT_CHANNEL_BLOCK = 8

#: Largest patch buffer (elements) of the im2col + matrix-product path; it is also never larger
#: than the output. Large blocks keep the matrix product efficient (2 Mi elements hold one
#: 56x56 image of a 64-channel 3x3 layer).
CPU_IM2COL_BLOCK_ELEMENTS = 1 << 21

#: Dense and grouped layers use im2col + BLAS when a group's reduction (C_in/groups * kH * kW)
#: is at least this deep and a group has at least this many output channels.
CPU_GEMM_MIN_DEPTH = 16
CPU_GEMM_MIN_OUT_CHANNELS = 4

#: Depthwise layers run plane by plane when a padded plane has at most this many elements
#: (and there is a plane per thread at least); larger images run row by row.
CPU_PLANE_MAX_ELEMENTS = 1 << 16

#: Output rows (over the batch and the height) whose weight-gradient terms one CPU task sums;
#: the chunks' partial sums are then added in order. Fixed by the shape, never by the number
#: of threads, so gradients are bitwise repeatable.
CPU_GRAD_WEIGHT_CHUNK_ROWS = 64
#: Single-channel images and depthwise layers (unit column stride) with at most this many taps
#: run kernels unrolled for their kernel size (``fastcorr.cpu.unrolled``); more taps, or 0
#: here, take the general row kernel.
CPU_UNROLL_MAX_TAPS = 64

