"""The embedded corpus: speech, noise, RIR and wind banks with URGENT 2025 manifests.

One module per source (`debian`, `tts` with `sentences`, `crowd`, `noise`, `rir`, `wind`,
`official`), `build` orchestrates them (the `use-repro corpus` stage), `summary` reports what
was built and `layout` names every file the stage writes.
"""
