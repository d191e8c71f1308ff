"""The verification engine: the pytest plugin and everything a verdict is made of.

The plugin (:mod:`.plugin`), the set of checks a target must run (:mod:`.plan`), the fixtures the checks use
(:mod:`.fixtures`), the report written to ``validation/<target>_validation.json`` (:mod:`.report`), what a
report means and whether it is about these bytes (:mod:`.verdict`), the in-process and subprocess runner behind
``conv2d pack verify`` and ``BundleValidator`` (:mod:`.runner`), evidence attached in a registry
(:mod:`.evidence`), the GitHub step summary and the hypothesis database that stays out of the bundle.
"""
