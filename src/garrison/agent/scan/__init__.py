"""The scan engines: hash signatures (ClamAV .hdb/.hsb), YARA rules, optional ClamAV."""
