"""The analytical CRM in the service: manager tasks from the behaviour changes the model found, and a client's
profile (segments now and a period ago, transitions, value figures, replenishments due, tiers held, group)."""
