//! People and their API tokens.

use super::*;

// --- people and tokens ---------------------------------------------------------------

#[utoipa::path(get, path = "/api/v1/me", tag = "people",
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub(crate) async fn me(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    let caller = state.authorize(&ctx, Action::ReadSelf, "me").await?;
    Ok(json(&MeView {
        user: UserView::from(&caller.user),
        teams: caller
            .principal
            .roles
            .iter()
            .map(|(team, role)| Membership {
                team: team.clone(),
                role: *role,
            })
            .collect(),
        csrf_token: match &caller.credential {
            auth::Credential::Session { csrf, .. } => Some(csrf.clone()),
            auth::Credential::Token { .. } => None,
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "people",
    responses((status = 200, body = [TokenView]), (status = 401, body = Problem)))]
pub(crate) async fn list_tokens(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    let caller = state.authorize(&ctx, Action::ReadSelf, "me/tokens").await?;
    let tokens = state.db.tokens_of(&caller.user.id).await?;
    Ok(json(
        &tokens.iter().map(TokenView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "people", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn create_token(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewToken>,
) -> ApiResult {
    let caller = state
        .authorize(&ctx, Action::ManageOwnTokens, "me/tokens")
        .await?;
    let req = body.value;
    let mut errors = Vec::new();
    if blank(&req.name) || req.name.chars().count() > 64 {
        errors.push(FieldError {
            field: "name".into(),
            message: "give the token a name of 1 to 64 characters".into(),
            rule: None,
        });
    }
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        errors.push(FieldError {
            field: "expiresInDays".into(),
            message: format!("{days} is out of range: 1 to 365"),
            rule: None,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let now = now_ms();
    let secret = format!("{}{}", auth::TOKEN_PREFIX, auth::random_secret());
    let token = db::ApiToken {
        id: auth::new_id("tok"),
        user_id: caller.user.id.clone(),
        name: req.name.trim().to_owned(),
        scope: match req.scope.unwrap_or(Scope::Write) {
            Scope::Write => "write".into(),
            Scope::Read => "read".into(),
        },
        created_at: now,
        expires_at: Some(now + i64::from(days) * 86_400_000),
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = state.db.write().await?;
    tx.insert_token(&token, &auth::digest(&secret)).await?;
    let target = format!("users/{}/tokens/{}", caller.user.login, token.id);
    audit(
        &mut tx,
        &ctx,
        "token.create",
        &target,
        None,
        None,
        serde_json::json!({"name": token.name, "scope": token.scope, "expiresInDays": days}),
    )
    .await?;
    tx.commit().await?;
    let body = serde_json::to_string(&CreatedToken {
        token: secret,
        info: TokenView::from(&token),
    })
    .unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, None))
}

#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "people",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn revoke_token(
    axum::extract::State(state): State,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult {
    let caller = state
        .authorize(&ctx, Action::ManageOwnTokens, "me/tokens")
        .await?;
    let mut tx = state.db.write().await?;
    if !tx.revoke_token(&caller.user.id, &id, now_ms()).await? {
        return Err(Problem::not_found(format!("a live token `{id}` of yours")));
    }
    let target = format!("users/{}/tokens/{id}", caller.user.login);
    audit(
        &mut tx,
        &ctx,
        "token.revoke",
        &target,
        None,
        None,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/users", tag = "people",
    responses((status = 200, body = [UserView]), (status = 401, body = Problem)))]
pub(crate) async fn list_users(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    state.authorize(&ctx, Action::ListPeople, "users").await?;
    let users = state.db.users().await?;
    Ok(json(&users.iter().map(UserView::from).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "people", request_body = NewPerson,
    responses((status = 201, body = UserView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_user(
    axum::extract::State(state): State,
    ctx: Ctx,
    body: Body<NewPerson>,
) -> ApiResult {
    let user = new_user(&state, &ctx, &body.value).await?;
    let body = serde_json::to_string(&UserView::from(&user)).unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &body, None))
}

/// Makes a person (with a local password, if given): the API's `POST /users` and the
/// portal's form on the people page.
pub(crate) async fn new_user(state: &AppState, ctx: &Ctx, req: &NewPerson) -> ApiResult<db::User> {
    let target = format!("users/{}", req.login.chars().take(64).collect::<String>());
    state.authorize(ctx, Action::ManagePeople, &target).await?;
    let mut errors = Vec::new();
    check_login("login", &req.login, &mut errors);
    if blank(&req.name) || req.name.chars().count() > 200 {
        errors.push(FieldError {
            field: "name".into(),
            message: "give a name of 1 to 200 characters".into(),
            rule: None,
        });
    }
    if let Some(p) = &req.password
        && (p.chars().count() < 12 || p.len() > 1024)
    {
        errors.push(FieldError {
            field: "password".into(),
            message: "a password has 12 to 1024 characters".into(),
            rule: None,
        });
    }
    if req.password.is_some() && !state.config.local_accounts() {
        errors.push(FieldError {
            field: "password".into(),
            message: "local accounts are turned off on this server (local_accounts = false)".into(),
            rule: None,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let hash = req
        .password
        .as_deref()
        .map(auth::hash_password)
        .transpose()?;
    let now = now_ms();
    let user = db::User {
        id: auth::new_id("u"),
        login: req.login.clone(),
        name: req.name.trim().to_owned(),
        email: req.email.clone(),
        platform_admin: req.platform_admin,
        created_at: now,
    };
    let mut tx = state.db.write().await?;
    tx.insert_user(&db::NewUser {
        id: &user.id,
        login: &user.login,
        name: &user.name,
        email: user.email.as_deref(),
        platform_admin: user.platform_admin,
        password_hash: hash.as_deref(),
        oidc: None,
        created_at: now,
    })
    .await
    .map_err(|e| match e {
        db::DbError::Conflict(_) => {
            Problem::conflict(format!("a person with login `{}` exists", req.login))
        }
        other => other.into(),
    })?;
    audit(
        &mut tx,
        ctx,
        "user.create",
        &target,
        None,
        None,
        serde_json::json!({"login": user.login, "name": user.name,
                "platformAdmin": user.platform_admin, "localPassword": hash.is_some()}),
    )
    .await?;
    tx.commit().await?;
    state.new_person(&user.login).await;
    Ok(user)
}

impl AppState {
    pub(crate) async fn new_person(&self, login: &str) {
        if let Some(hook) = &self.on_new_person {
            hook(login.to_owned()).await;
        }
    }
}
