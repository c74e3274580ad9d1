"""The URGENT 2025 distortions, one module each; every function works on float64 [T] arrays.

noise        additive noise at an SNR measured on active frames (ESPnet's power VAD)
reverb       RIR convolution, the early-RIR cut and the direct-path peak
clipping     quantile clipping
bandwidth    down- and up-sampling with the challenge's four resampling methods
codec        MP3 / Ogg-Vorbis / Ogg-Opus round trip in memory (libsndfile)
packet_loss  zeroed 20 ms packets, sampled in bursts
wind         wind noise mixed through the challenge's side-chain compressor and clipper
"""
