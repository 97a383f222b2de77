"""Sample upstreams the gateway demo and end-to-end tests run against."""
