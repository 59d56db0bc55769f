"""Tunables of the compiled kernels, in one place (tests may patch them)."""

#: Output channels one CPU task computes together in a dense or grouped layer: each input row
#: read into cache serves this many output channels.
CPU_OUT_CHANNEL_BLOCK = 8
