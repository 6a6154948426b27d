"""Dashboard pages of webhook endpoints and their delivery log."""

urlpatterns = []
