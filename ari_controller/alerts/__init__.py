"""What happens to an alert after its call: escalation to the policy's people rule by rule
until someone acknowledges, deliveries to chat and webhooks, and people acting on alerts."""
