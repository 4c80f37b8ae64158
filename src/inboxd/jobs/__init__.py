"""The durable job queue: enqueue, claim, lease/heartbeat, rescue, retry, cancel, events."""
