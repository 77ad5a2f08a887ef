# "Context-Based Property Management",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

with posthog.new_context():
    posthog.identify_context('user_456')
    posthog.tag('session_type', 'premium')
    posthog.tag('ab_test_group', 'variant_b')

    # Tags are automatically included in user properties
    posthog.set({
        'last_login': '2024-09-07T10:30:00Z',
        'subscription_status': 'active'
    })

    # Context tags become part of the user profile
    posthog.capture('dashboard_viewed')
