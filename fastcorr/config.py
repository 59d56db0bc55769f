"""Tunables of the compiled kernels, in one place (tests may patch them)."""

#: Output channels one CPU task computes together in a dense or grouped layer: each input row
#: read into cache serves this many output channels.
CPU_OUT_CHANNEL_BLOCK = 8

#: Largest patch buffer (elements) of the im2col + matrix-product path; it is also never larger
#: than the output. Large blocks keep the matrix product efficient (2 Mi elements hold one
#: 56x56 image of a 64-channel 3x3 layer).
CPU_IM2COL_BLOCK_ELEMENTS = 1 << 21

#: A block of transformed input tiles of the Winograd path (elements: components x channels
#: x tiles) holds twice the transformed weights' elements, within these bounds: few channels
#: keep a block and its products in the cores' L2, many re-read the weights fewer times
#: (see fastcorr.cpu.winograd._Tiles for the measurements).
CPU_WINOGRAD_MIN_BLOCK_ELEMENTS = 1 << 18
CPU_WINOGRAD_MAX_BLOCK_ELEMENTS = 1 << 22
#: The weight gradient's blocks (its products sum over the tiles: larger blocks, fewer sums).
CPU_WINOGRAD_GRAD_WEIGHT_BLOCK_ELEMENTS = 1 << 20

#: "auto" takes Winograd's F(2x2, 3x3) for stride-1 3x3 layers with at least this many input
#: and output channels per group (see fastcorr.cpu._auto_winograd for the measurements).
CPU_WINOGRAD_MIN_CHANNELS = 8

#: Dense and grouped layers use im2col + BLAS when a group's reduction (C_in/groups * kH * kW)
#: is at least this deep and a group has at least this many output channels.
CPU_GEMM_MIN_DEPTH = 16
CPU_GEMM_MIN_OUT_CHANNELS = 4

#: Output rows (over the batch and the height) whose weight-gradient terms one CPU task sums;
#: the chunks' partial sums are then added in order. Fixed by the shape, never by the number
#: of threads, so gradients are bitwise repeatable.
CPU_GRAD_WEIGHT_CHUNK_ROWS = 64

#: The same for the "planes" weight gradient (one input channel per group): images one task
#: sums.
CPU_GRAD_WEIGHT_CHUNK_PLANES = 8


# ============================================================================ CUDA backend
# Read when a GPU kernel is built or launched (never at import); tests shrink them to cover
# every edge of a tile. Kernels are specialised on these values (and cached per value).

#: Threads of a forward / grad-input block: ``(x, y)``, x along the output columns.
CUDA_BLOCK = (32, 8)

#: Outputs each thread keeps in registers in dense and grouped layers:
#: ``(output channels, rows, columns)``; rows and columns are strided by the block shape so
#: that shared-memory reads and global stores stay coalesced.
CUDA_DENSE_OUTPUTS = (4, 1, 4)

#: The same for depthwise layers and single-channel images (one input channel per output).
CUDA_DEPTHWISE_OUTPUTS = (1, 2, 4)

#: Largest dynamic shared memory (bytes) one block may ask for; larger tiles (huge kernels or
#: dilations) run a kernel that reads global memory directly.
CUDA_MAX_SHARED_BYTES = 48 * 1024

#: Threads of a weight-gradient block, and output rows ((image, row) pairs) per split-K chunk:
#: 0 chooses enough rows for about CUDA_GRAD_WEIGHT_POSITIONS output positions per thread.
#: The chunking is fixed by the shape: the chunks' partial sums are added in order, so weight
#: gradients are bitwise repeatable (no float atomics anywhere).
CUDA_GRAD_WEIGHT_THREADS = 256
CUDA_GRAD_WEIGHT_CHUNK_ROWS = 0
CUDA_GRAD_WEIGHT_POSITIONS = 16

#: Weight taps whose sums a weight-gradient block keeps in shared memory at once.
CUDA_GRAD_WEIGHT_TAPS = 16

#: Bytes of input per chunk (and per stream) of the streaming functions of fastcorr.batch.
CUDA_STREAM_CHUNK_BYTES = 256 << 20

#: Layers with one input channel per group whose output planes have at most this many pixels
#: run "flat" (one vector loop per tap over each padded plane) instead of "taps" (Zen 4,
#: float32, batch 8, taps -> flat: 56^2 planes 1.00-1.22x (7x7 at 96 channels 4.4 -> 3.6
#: ms), 112^2 0.92-1.01x, single-channel 512^2 images 0.72-0.79x).
CPU_FLAT_MAX_PLANE = 56 * 56

#: Grouped layers with 2 to this many input channels per group take "flat" too (their
#: forward pass), instead of im2col's many small matrix products.
CPU_FLAT_MAX_GROUP_CHANNELS = 16
