"""Dashboard pages of groups."""

urlpatterns = []
