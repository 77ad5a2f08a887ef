# Seed example "Group Association Patterns" (the capture part), adapted only by the import.
import posthog_otel as posthog

# Multi-level organization structure
posthog.capture('user123', 'report_generated', {
    'report_type': 'monthly_summary'
}, groups={
    'company': 'acme_corp',
    'division': 'north_america',
    'team': 'sales_team_west'
})
