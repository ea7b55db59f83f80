"""The feature dictionary: a readable English and Chinese name and description for every feature column.

Reports and reason codes look names up here. Windowed and per-value features are described by patterns
(``bal_aum_adb_{w}m``, ``hold_has_{product}``, ...), so any window list from config is covered. An unknown
column raises ValueError: a feature without a description should not reach a model review report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

PRODUCT_NAMES: dict[str, tuple[str, str]] = {
    "demand_deposit": ("demand deposit", "活期存款"),
    "time_deposit": ("time deposit", "定期存款"),
    "debit_card": ("debit card", "借记卡"),
    "credit_card": ("credit card", "信用卡"),
    "payroll": ("payroll service", "代发工资"),
    "mobile_banking": ("mobile banking", "手机银行"),
    "consumer_loan": ("consumer loan", "消费贷款"),
    "mortgage": ("mortgage", "住房按揭贷款"),
    "business_loan": ("business loan", "经营贷款"),
    "wealth_management": ("wealth management", "理财"),
    "fund": ("mutual fund", "基金"),
    "insurance": ("insurance", "保险"),
    "precious_metal": ("precious metal", "贵金属"),
    "private_banking": ("private banking", "私人银行"),
}
CHANNEL_NAMES: dict[str, tuple[str, str]] = {
    "counter": ("counter", "柜面"),
    "atm": ("ATM", "自助设备"),
    "online": ("online banking", "网上银行"),
    "mobile": ("mobile app", "手机银行"),
    "pos": ("POS", "POS刷卡"),
    "qr": ("QR code", "扫码支付"),
}
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "salary": ("salary", "工资"),
    "transfer": ("transfer", "转账"),
    "consumption": ("consumption", "消费"),
    "bill": ("bill payment", "缴费"),
    "loan_repayment": ("loan repayment", "还贷"),
    "investment": ("investment", "投资"),
    "cash": ("cash", "现金"),
    "interest": ("interest", "利息"),
    "fee": ("fee", "手续费"),
}
_VALUE_NAMES = {"product": PRODUCT_NAMES, "channel": CHANNEL_NAMES, "category": CATEGORY_NAMES}


@dataclass(frozen=True)
class FeatureDescription:
    """Readable name and description of one feature, in English and Chinese."""

    feature: str
    name_en: str
    name_zh: str
    description_en: str
    description_zh: str


# (pattern, English name, Chinese name, English description, Chinese description). Placeholders: {w} a
# window in months, {product}/{channel}/{category} a value, rendered with its readable name.
_ENTRIES: tuple[tuple[str, str, str, str, str], ...] = (
    ("customer_id", "Customer id", "客户号", "The bank's customer key.", "客户唯一编号。"),
    ("as_of", "As-of date", "观察日", "Features use data strictly before this date.", "特征只使用该日期之前的数据。"),
    ("cust_age", "Age", "年龄", "Age in whole years at the as-of date.", "观察日的周岁年龄。"),
    ("cust_tenure_months", "Customer tenure (months)", "开户时长(月)",
     "Whole months since the first account was opened.", "自首次开户以来的完整月数。"),
    ("cust_gender", "Gender", "性别", "Gender (F/M).", "性别。"),
    ("cust_city_tier", "City tier", "城市等级", "City tier 1-4; 5 = rural.", "城市等级1-4,5为县域/农村。"),
    ("cust_occupation", "Occupation", "职业", "Declared occupation.", "登记职业。"),
    ("cust_education", "Education", "学历", "Highest education level.", "最高学历。"),
    ("cust_declared_income_monthly", "Declared monthly income", "申报月收入",
     "Monthly income the customer declared, in the dataset's currency.", "客户申报的月收入。"),
    ("cust_risk_questionnaire_score", "Risk questionnaire score", "风险测评得分",
     "0-100; missing when the customer never answered.", "风险承受能力问卷得分(0-100),未测评为空。"),
    ("cust_credit_score", "Credit score", "信用评分", "Credit score; missing when unknown.", "信用评分,未知为空。"),
    ("cust_mobile_banking_months", "Mobile banking tenure (months)", "手机银行使用时长(月)",
     "Whole months since enrolling in mobile banking; missing when not enrolled.",
     "开通手机银行以来的完整月数,未开通为空。"),
    (r"bal_aum_adb_{w}m", "Average daily AUM, {w}m", "近{w}个月日均资产",
     "Average daily assets under management over the last {w} complete months (months without balance "
     "count as zero within the customer's history).", "近{w}个完整月的日均管理资产(AUM),历史内无余额的月份按0计。"),
    (r"bal_loan_adb_{w}m", "Average daily loan balance, {w}m", "近{w}个月日均贷款余额",
     "Average daily loan balance over the last {w} complete months.", "近{w}个完整月的日均贷款余额。"),
    ("bal_aum_trend_3m", "AUM trend, 3m vs previous 3m", "资产趋势(近3月对比前3月)",
     "Average daily AUM of the last 3 months / of the 3 months before, minus 1; missing when the earlier "
     "months hold no AUM.", "近3个月日均资产除以此前3个月日均资产减1;前3个月无资产时为空。"),
    ("bal_aum_volatility_6m", "AUM volatility, 6m", "资产波动率(6个月)",
     "Coefficient of variation of monthly AUM over the last 6 months.", "近6个月月度资产的变异系数。"),
    (r"bal_aum_share_{product}", "Share of AUM in {product}", "{product}资产占比",
     "Share of the last 3 months' AUM held in {product}.", "近3个月资产中{product}的占比。"),
    ("bal_aum_month_end_last", "Month-end AUM, last month", "上月末资产余额",
     "Month-end AUM of the last complete month; kept for comparison only, tiers never use it.",
     "上一完整月的月末资产余额,仅供对比,分层从不使用。"),
    ("bal_history_months", "Balance history (months)", "余额历史月数",
     "Months since the customer's first balance record.", "自首条余额记录以来的月数。"),
    ("txn_recency_days", "Days since last transaction", "最近交易距今天数",
     "Days from the last transaction to the as-of date, capped when none in the last 12 months.",
     "最近一笔交易距观察日的天数,近12个月无交易时取上限值。"),
    (r"txn_count_{w}m", "Transactions, {w}m", "近{w}个月交易笔数", "Number of transactions in the last {w} months.",
     "近{w}个月的交易笔数。"),
    (r"txn_amount_{w}m", "Transaction amount, {w}m", "近{w}个月交易金额",
     "Total amount of transactions in the last {w} months.", "近{w}个月的交易总金额。"),
    (r"txn_inflow_{w}m", "Inflows, {w}m", "近{w}个月资金流入", "Money received in the last {w} months.",
     "近{w}个月的资金流入金额。"),
    (r"txn_outflow_{w}m", "Outflows, {w}m", "近{w}个月资金流出", "Money paid out in the last {w} months.",
     "近{w}个月的资金流出金额。"),
    ("txn_net_flow_3m", "Net flow, 3m", "近3个月资金净流入", "Inflows minus outflows over the last 3 months.",
     "近3个月流入减流出。"),
    ("txn_salary_regularity", "Salary regularity", "工资入账规律性",
     "1 when salary arrives on the same day each month, towards 0 when the day varies; 0 without salary.",
     "工资每月同日入账为1,入账日越分散越接近0;无工资为0。"),
    ("txn_salary_months_12m", "Months with salary, 12m", "近12个月工资入账月数",
     "Months of the last 12 with a salary credit.", "近12个月中有工资入账的月数。"),
    ("txn_inflow_seasonality", "Inflow seasonality", "资金流入季节性",
     "Largest single month's share of the last 12 months' inflows (1/12 even, 1 one lump).",
     "近12个月中单月流入占比的最大值(1/12为均匀,1为集中一次)。"),
    (r"txn_channel_share_{channel}", "Share of transactions via {channel}", "{channel}交易占比",
     "Share of the last 12 months' transactions made via {channel}.", "近12个月通过{channel}完成的交易笔数占比。"),
    (r"txn_category_share_{category}", "Share of {category} transactions", "{category}类交易占比",
     "Share of the last 12 months' transactions of type {category}.", "近12个月{category}类交易笔数占比。"),
    ("txn_outflow_other_bank_share_3m", "Outflow to other banks, 3m share", "近3个月转出他行占比",
     "Share of the last 3 months' outflow amount paid to other banks.", "近3个月流出金额中转往他行的占比。"),
    ("txn_count_trend_3m", "Transaction trend, 3m vs previous 3m", "交易笔数趋势(近3月对比前3月)",
     "Transactions of the last 3 months / of the 3 before, minus 1; missing when the earlier months have none.",
     "近3个月交易笔数除以此前3个月笔数减1;此前无交易时为空。"),
    ("hold_n_products", "Products held", "持有产品数", "Distinct products held at the as-of date.",
     "观察日持有的不同产品数。"),
    (r"hold_has_{product}", "Holds {product}", "持有{product}", "1 when {product} is held at the as-of date.",
     "观察日持有{product}为1。"),
    ("hold_tenure_months_max", "Longest product tenure (months)", "最长持有产品时长(月)",
     "Months since the oldest product still held was opened.", "仍持有产品中最早开立至今的月数。"),
    ("hold_highest_product_rank", "Highest-value product held", "持有最高价值产品等级",
     "Rank (1-14, low to high value) of the highest-value product held; 0 when none.",
     "持有产品中价值最高者的等级(1-14,由低到高),无持有为0。"),
    ("hold_n_opened_12m", "Products opened, 12m", "近12个月新开产品数", "Holdings opened in the last 12 months.",
     "近12个月新开立的产品数。"),
    ("hold_n_closed_12m", "Products closed, 12m", "近12个月关闭产品数", "Holdings closed in the last 12 months.",
     "近12个月关闭的产品数。"),
    (r"int_logins_{w}m", "App logins, {w}m", "近{w}个月手机银行登录次数", "App logins in the last {w} months.",
     "近{w}个月的手机银行登录次数。"),
    ("int_complaints_12m", "Complaints, 12m", "近12个月投诉次数", "Complaints in the last 12 months.",
     "近12个月的投诉次数。"),
    ("int_campaign_contacts_12m", "Campaign contacts, 12m", "近12个月营销触达次数",
     "Marketing contacts in the last 12 months.", "近12个月被营销触达的次数。"),
    ("int_campaign_response_rate_12m", "Campaign response rate, 12m", "近12个月营销响应率",
     "Responses / contacts over the last 12 months; missing without contacts.", "近12个月响应次数/触达次数,无触达为空。"),
    ("int_branch_visits_3m", "Branch visits, 3m", "近3个月网点到访次数", "Branch visits in the last 3 months.",
     "近3个月到访网点次数。"),
    ("int_login_trend_3m", "Login trend, 3m vs previous 3m", "登录趋势(近3月对比前3月)",
     "App logins of the last 3 months / of the 3 before, minus 1; missing when the earlier months have none.",
     "近3个月登录次数除以此前3个月登录次数减1;此前无登录时为空。"),
    ("label_churn", "Churn label", "流失标签", "1 when average daily AUM falls 70%+ or all accounts close in the "
     "next 3 months.", "未来3个月日均资产下降70%以上或全部账户关闭为1。"),
    ("label_conversion", "Conversion label", "转化标签", "1 when a customer below the target tier reaches it "
     "within 6 months.", "目标等级以下客户在6个月内达到目标等级为1。"),
    ("label_upgrade", "Upgrade label", "产品升级标签", "1 when a higher-value product not held is opened within "
     "3 months.", "3个月内新开未持有的高价值产品为1。"),
)

_PLACEHOLDERS = {"w": r"(?P<w>\d+)", "product": r"(?P<product>[a-z_]+)", "channel": r"(?P<channel>[a-z_]+)",
                 "category": r"(?P<category>[a-z_]+)"}


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern)
    for key, group in _PLACEHOLDERS.items():
        regex = regex.replace(re.escape("{" + key + "}"), group)
    return re.compile(f"^{regex}$")


_COMPILED = tuple((_compile(entry[0]), entry) for entry in _ENTRIES)


def describe_feature(feature: str) -> FeatureDescription:
    """Return the readable names and descriptions of one feature column; ValueError when it is unknown."""
    for regex, (_, name_en, name_zh, desc_en, desc_zh) in _COMPILED:
        match = regex.match(feature)
        if match is None:
            continue
        en, zh = {}, {}
        for key, value in match.groupdict().items():
            if key == "w":
                en[key] = zh[key] = value
                continue
            names = _VALUE_NAMES[key]
            if value not in names:
                break
            en[key], zh[key] = names[value]
        else:
            return FeatureDescription(
                feature, name_en.format(**en), name_zh.format(**zh), desc_en.format(**en), desc_zh.format(**zh)
            )
    raise ValueError(f"feature {feature!r} is not in the feature dictionary (bankseg.features.dictionary)")


def feature_dictionary(features: Iterable[str]) -> pd.DataFrame:
    """Return a table (feature, name_en, name_zh, description_en, description_zh) for these features."""
    rows = [describe_feature(f) for f in features]
    return pd.DataFrame([r.__dict__ for r in rows], columns=list(FeatureDescription.__dataclass_fields__))
