"""The sync engine: any mail provider into the local store, in resumable batches."""
