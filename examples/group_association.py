# "Group Association Patterns",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

# Multi-level organization structure
posthog.capture('user123', 'report_generated', {
    'report_type': 'monthly_summary'
}, groups={
    'company': 'acme_corp',
    'division': 'north_america',
    'team': 'sales_team_west'
})

# Feature flag evaluation with groups
enabled = posthog.feature_enabled(
    'new_dashboard',
    'user123',
    groups={'company': 'acme_corp'},
    person_properties={'plan': 'enterprise'},
    group_properties={
        'company': {'size': 'large', 'industry': 'tech'}
    }
)
