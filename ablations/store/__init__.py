"""Store: the results directory, its layout and file schemas, locks and atomic writes. Imports no other stage."""
