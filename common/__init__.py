"""
The library beneath the scripts, in the book's own folder name: the book's layers (time_layers)
and models (models), their fast twins (fast_layers, fast_output, fast_model) and the cell table
(cells), the optimizers (optimizer), the gist's model (gist, gist_reference), text and
vocabularies (vocabulary), checkpoint files (checkpoint), one interface to every checkpoint kind
(interface), the run contract both trainers share (options, run, run_files, reporter, history,
clock, live_page), the pages (page, with the web files in pages/), evaluating and sampling
helpers (generation) and command-line plumbing (cli).
"""
