"""
The library beneath the scripts, in the book's own folder name: the layers (time_layers), the
models (models), the optimizers (optimizer), text and vocabularies (vocabulary), checkpoint files
(checkpoint), one interface to every checkpoint kind (interface), the run contract both trainers
share (training), the pages' shared parts and the live page of a run (page), sampling helpers both
model kinds use (generation) and command-line plumbing (cli).
"""
