"""Parity: how a runtime's outputs are judged against the source model's.

The verifier's tolerance policy (:mod:`.tolerance`), the parity figures of one output (:mod:`.figures`),
where in the graph two runs part ways (:mod:`.divergence`) and the valid and invalid inputs the fuzz checks
feed a runtime (:mod:`.fuzzing`). The targets' checks use these; the pytest harness records them.
"""
