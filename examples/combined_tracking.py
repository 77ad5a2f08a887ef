# "Combined User and Group Tracking",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

# Set up user with group associations
user_id = 'user_789'
company_id = 'company_xyz'
team_id = 'team_frontend'

# Identify user properties
posthog.set(user_id, {
    'name': 'Alice Smith',
    'role': 'Senior Developer',
    'department': 'Engineering',
    'hire_date': '2023-06-01'
})

# Identify company
posthog.group_identify('company', company_id, {
    'name': 'XYZ Startup',
    'industry': 'SaaS',
    'size': 'Series A',
    'location': 'San Francisco'
})

# Identify team
posthog.group_identify('team', team_id, {
    'name': 'Frontend Team',
    'tech_stack': 'React',
    'team_lead': 'bob.johnson@xyz.com'
})

# Track events with group context
posthog.capture(user_id, 'feature_used', {
    'feature': 'advanced_dashboard'
}, groups={
    'company': company_id,
    'team': team_id
})
