"""Sign-in, sign-out, the home redirect and switching organization."""

from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.tenancy import SESSION_KEY, member_required


def home(request):
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    return redirect(reverse("accounts:organization"))


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


@require_POST
def switch_organization(request):
    if request.user.is_authenticated:
        wanted = request.POST.get("organization")
        if wanted and request.user.memberships.filter(organization_id=wanted).exists():
            request.session[SESSION_KEY] = int(wanted)
    return redirect("home")


@member_required()
def organization(request):
    memberships = request.organization.memberships.select_related("user").order_by("user__email")
    return render(request, "accounts/organization.html", {"memberships": memberships})
