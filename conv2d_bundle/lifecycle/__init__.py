"""A bundle's life: how it is created (:mod:`.create`: export every format, run the checks, seal, place),
shown (:mod:`.show`), compared (:mod:`.compare`), kept or cleaned (:mod:`.retention`: pins, deployment records)
and deployed (:mod:`.deploy`, over ssh/rsync with :mod:`.remote`)."""
