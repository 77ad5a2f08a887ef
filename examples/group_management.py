# "Group Management",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

# Identify a company/organization
posthog.group_identify('company', 'acme_corp', {
    'name': 'Acme Corporation',
    'industry': 'Technology',
    'size': 'Enterprise',
    'plan': 'Business',
    'mrr': 5000,
    'employees': 250
})

# Identify a team within organization
posthog.group_identify('team', 'engineering', {
    'name': 'Engineering Team',
    'department': 'Product',
    'lead': 'jane.doe@acme.com',
    'members_count': 12
})

# Update group properties
posthog.group_identify('company', 'acme_corp', {
    'mrr': 5500,  # Updated MRR
    'employees': 275  # Updated employee count
})
